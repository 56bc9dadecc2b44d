//! Where a connection goes, and how it is made: TCP to each of the
//! authority's addresses in turn, then TLS for `https://` URLs, under one
//! deadline.

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::{error_chain, PoolError};
use crate::rpc::tls::Stream;

/// Where a connection goes: `host:port`, and TLS to speak there.
#[derive(Clone)]
pub struct Endpoint {
    authority: String,
    tls: Option<TlsTarget>,
    /// The address connections are made from, when the caller must be seen
    /// at a particular one of its host's addresses.
    local: Option<std::net::IpAddr>,
}

#[derive(Clone)]
struct TlsTarget {
    connector: tokio_rustls::TlsConnector,
    /// What the certificate must name: the URL's host (an IP literal is
    /// checked against the certificate's IP addresses).
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("authority", &self.authority)
            .field(
                "tls_server_name",
                &self.tls.as_ref().map(|t| t.server_name.to_str()),
            )
            .finish()
    }
}

impl Endpoint {
    /// Plain TCP to `authority` (`host:port`).
    pub fn plain(authority: impl Into<String>) -> Endpoint {
        Endpoint {
            authority: authority.into(),
            tls: None,
            local: None,
        }
    }

    /// TLS to `authority` (`host:port`), checking that the certificate
    /// names `host` (a DNS name, or an IP address without brackets).
    ///
    /// # Errors
    /// A host that is neither a DNS name nor an IP address.
    pub fn tls(
        authority: impl Into<String>,
        host: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Endpoint, PoolError> {
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| PoolError::Tls(format!("{host:?} cannot be checked by TLS: {e}")))?;
        Ok(Endpoint {
            authority: authority.into(),
            tls: Some(TlsTarget {
                connector: tokio_rustls::TlsConnector::from(config),
                server_name,
            }),
            local: None,
        })
    }

    /// Makes every connection from `local` (none: the system's choice).
    pub fn from_local(mut self, local: Option<std::net::IpAddr>) -> Endpoint {
        self.local = local;
        self
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Connects, and shakes hands when TLS is asked for.
    pub(crate) async fn connect(&self) -> Result<Stream, PoolError> {
        let authority = &self.authority;
        let stream = self.tcp().await.map_err(|e| {
            let why = format!("{authority}: {e}");
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                PoolError::Refused(why)
            } else {
                PoolError::Connect(why)
            }
        })?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(stream));
        };
        let stream = tls
            .connector
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(|e| PoolError::Tls(format!("TLS with {authority}: {}", error_chain(&e))))?;
        Ok(Stream::Tls(Box::new(stream.into())))
    }

    /// The TCP connection, from [`Endpoint::from_local`]'s address if set.
    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let Some(local) = self.local else {
            return TcpStream::connect(&self.authority).await;
        };
        let mut last = None;
        for remote in tokio::net::lookup_host(&self.authority).await? {
            let socket = if remote.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(std::net::SocketAddr::new(local, 0))?;
            match socket.connect(remote).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
    }
}
