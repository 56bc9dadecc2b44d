//! TLS for the XML-RPC layer: a server's certificate and key, the CA a
//! client trusts, the process-wide client default, and [`Stream`], the one
//! connection type of both sides (plain TCP, or TLS over it).
//!
//! rustls with its ring provider (it builds with a C compiler alone), TLS
//! 1.2 and 1.3, ALPN `http/1.1`. Plain HTTP stays the default: a server
//! serves HTTPS only when its [`ServerConfig`](super::ServerConfig) has a
//! TLS config, and a client speaks TLS only to `https://` URLs. Certificates
//! are checked against the given CA only (no system roots: a cluster has a
//! private CA), and an IP-literal URL is checked against the certificate's
//! IP addresses.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate in the file", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: not a usable CA certificate: {source}", path.display())]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

fn pem_error(path: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |source| TlsError::Pem {
        path: path.to_owned(),
        source,
    }
}

/// The one crypto provider, chosen here rather than by crate features, so
/// that another dependency enabling a second provider changes nothing.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol every connection negotiates.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A server's TLS config from PEM files: `cert` holds the certificate chain
/// (the server's own first), `key` its private key (PKCS#8, PKCS#1 or
/// SEC1). No client certificates are asked for.
///
/// # Errors
/// An unreadable or malformed file, no certificate, or a key that does not
/// match the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(pem_error(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// A client's TLS config that trusts the CA certificates in the PEM file
/// `ca`, and nothing else.
///
/// # Errors
/// An unreadable or malformed file, no certificate, or one rustls cannot
/// use as a trust anchor.
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(pem_error(ca))? {
        roots
            .add(cert.map_err(pem_error(ca))?)
            .map_err(|source| TlsError::BadCa {
                path: ca.to_owned(),
                source,
            })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate(ca.to_owned()));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

static DEFAULT_CLIENT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Sets the TLS config that every [`Client`](super::Client) of this process
/// uses for `https://` URLs when its own
/// [`ClientConfig::tls`](super::ClientConfig::tls) is `None`.
///
/// Trust is a property of the process (as the system roots are for most
/// programs): a binary sets it once at start, from its CA flag, before it
/// builds any client, and every client deep inside the services (to the db,
/// to peers, to front-ends, to tablets) then speaks HTTPS without each of
/// them carrying the config. Returns false, changing nothing, when a default
/// was already set.
pub fn set_default_client(config: Arc<rustls::ClientConfig>) -> bool {
    DEFAULT_CLIENT.set(config).is_ok()
}

/// The process-wide client TLS config, if [`set_default_client`] was called.
pub fn default_client() -> Option<Arc<rustls::ClientConfig>> {
    DEFAULT_CLIENT.get().cloned()
}

/// A connection, plain or TLS. One enum rather than a boxed trait object:
/// every read and write of the busiest paths goes through it.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
