//! HTTPS across the cluster (issue 11, point 10): a CA and server
//! certificates made here with rcgen, a whole cluster (db, two front-ends,
//! balancer) serving TLS on every port and trusting the CA for every call
//! between members, and the clients around it: ours, the feeder binary,
//! and Python's `xmlrpc.client`.
//!
//! The properties: a write and a read through the balancer work end to end
//! over TLS; a stock Python client trusting the CA works; plain HTTP to a
//! TLS port gets a plain answer saying to use https; a client that does not
//! trust the CA, or trusts none, fails with an error that says so.

mod cluster_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster_support::{PASSWORD, SECRET, TEAMS};
use podium::rpc::{ClientConfig, ClientError, Value};
use support::{http_post, python, runtime, wait_until, Process};

/// How long a TLS cluster gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment every cluster process gets.
const ENVS: [(&str, &str); 2] = [
    ("PODIUM_CLUSTER_SECRET", SECRET),
    ("PODIUM_FEEDER_PASSWORD", PASSWORD),
];

/// A private CA and one server certificate it signed, for `127.0.0.1` and
/// `localhost`, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (ca_cert, issuer) = new_ca("Podium test CA");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("valid names");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "podium test server");
        params.use_authority_key_identifier_extension = true;
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a signed certificate");
        std::fs::write(dir.path().join("server.pem"), cert.pem()).expect("write server.pem");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write key");
        // Another CA, that signed nothing here: trusting it is trusting the
        // wrong one.
        let (other, _) = new_ca("Some other CA");
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).expect("write other");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// `--tls-cert`, `--tls-key` and `--tls-ca`, as every server gets them.
    fn flags(&self) -> Vec<String> {
        let p = |name: &str| self.path(name).to_str().expect("a UTF-8 path").to_owned();
        vec![
            "--tls-cert".into(),
            p("server.pem"),
            "--tls-key".into(),
            p("server.key"),
            "--tls-ca".into(),
            p("ca.pem"),
        ]
    }

    /// A client config trusting the CA in `file`.
    fn client(&self, file: &str, timeout: Duration) -> ClientConfig {
        ClientConfig {
            timeout,
            tls: Some(podium::rpc::tls::client_config(&self.path(file)).expect("a CA")),
            ..ClientConfig::default()
        }
    }
}

fn new_ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("no names");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("a self-signed CA");
    (cert, rcgen::Issuer::new(params, key))
}

fn https(p: &Process) -> String {
    format!("https://{}/", p.addr())
}

fn bin(name: &str) -> &'static str {
    match name {
        "db" => env!("CARGO_BIN_EXE_podium-db"),
        "frontend" => env!("CARGO_BIN_EXE_podium-frontend"),
        "balancer" => env!("CARGO_BIN_EXE_podium-balancer"),
        "feeder" => env!("CARGO_BIN_EXE_podium-feeder"),
        other => panic!("no binary {other}"),
    }
}

/// A db, two push front-ends and a balancer, every port TLS only, every
/// member trusting the CA. Killed when dropped (balancer first).
struct TlsCluster {
    balancer: Process,
    frontends: Vec<Process>,
    _db: Process,
}

impl TlsCluster {
    fn start(pki: &Pki, db_file: &Path) -> TlsCluster {
        let tls = pki.flags();
        let mut args = vec![
            "--port".to_owned(),
            "0".into(),
            "--db-file".into(),
            db_file.to_str().expect("a UTF-8 path").into(),
        ];
        args.extend(tls.iter().cloned());
        let db = Process::spawn(bin("db"), &args, &ENVS);
        let frontends: Vec<Process> = (1..=2)
            .map(|uid| {
                let mut args = vec![
                    "--port".to_owned(),
                    "0".into(),
                    "--uid".into(),
                    uid.to_string(),
                    "--db".into(),
                    https(&db),
                    "--cache".into(),
                    "push".into(),
                ];
                args.extend(tls.iter().cloned());
                Process::spawn(bin("frontend"), &args, &ENVS)
            })
            .collect();
        let mut args = vec!["--port".to_owned(), "0".into()];
        for fe in &frontends {
            args.extend(["--frontend".into(), https(fe)]);
        }
        args.extend(["--probe-interval-ms", "100", "--probe-timeout-ms", "400"].map(str::to_owned));
        args.extend(tls.iter().cloned());
        let balancer = Process::spawn(bin("balancer"), &args, &ENVS);
        TlsCluster {
            balancer,
            frontends,
            _db: db,
        }
    }
}

/// Property: over TLS everywhere, the cluster comes up (front-ends follow
/// the db's feed, the balancer probes them), a write through the balancer
/// is acknowledged and then read back through it, the feeder binary
/// writes with --tls-ca (by URL, and by --serip/--serport, which then
/// means https), and Python's xmlrpc.client reads, trusting the CA.
#[test]
fn a_cluster_with_tls_on_every_port_works_end_to_end() {
    let pki = Pki::new();
    let cluster = TlsCluster::start(&pki, &pki.path("scores.db"));
    let config = pki.client("ca.pem", Duration::from_secs(10));
    let api = |url: &str| podium::api::Client::new(url, config.clone()).expect("an https URL");
    for fe in &cluster.frontends {
        let fe = api(&https(fe));
        assert!(
            wait_until(READY_TIMEOUT, || runtime()
                .block_on(fe.health())
                .is_ok_and(|h| h.ok)),
            "a front-end never became ready over TLS"
        );
    }
    let bal = api(&https(&cluster.balancer));
    assert!(
        wait_until(READY_TIMEOUT, || runtime().block_on(bal.roster()).is_ok()),
        "the balancer never answered over TLS"
    );
    let before = runtime().block_on(bal.tally("Gaul")).expect("a tally").gold;
    let ack = runtime()
        .block_on(bal.increment_medal("Gaul", "gold", PASSWORD, Some("tls-write-1")))
        .expect("a write through the balancer");
    match &ack.entry {
        podium::store::Entry::Tally(t) => assert_eq!(t.gold, before + 1),
        other => panic!("a medal write left {other:?}"),
    }
    assert!(
        wait_until(Duration::from_secs(10), || runtime()
            .block_on(bal.tally("Gaul"))
            .is_ok_and(|t| t.gold == before + 1)),
        "the write was not read back through the balancer"
    );

    // The feeder binary, by URL and by the old host flags.
    let port = cluster.balancer.addr().port().to_string();
    let ca = pki.ca();
    let ca = ca.to_str().expect("a UTF-8 path");
    for target in [
        vec!["--server".to_owned(), https(&cluster.balancer)],
        vec![
            "--serip".into(),
            "127.0.0.1".into(),
            "--serport".into(),
            port,
        ],
    ] {
        let out = Command::new(bin("feeder"))
            .args(&target)
            .args(["--tls-ca", ca, "award", "Rome", "silver"])
            .env("PODIUM_FEEDER_PASSWORD", PASSWORD)
            .output()
            .expect("running the feeder");
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).starts_with("Medal tally of Rome updated:"),
            "feeder {target:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = python(
        r#"
import ssl, sys, xmlrpc.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
proxy = xmlrpc.client.ServerProxy(sys.argv[1], context=ctx)
print(proxy.get_medal_tally("Gaul", 1))
print(len(proxy.scoreboard.medal_table()))
try:
    xmlrpc.client.ServerProxy(sys.argv[1]).get_medal_tally("Gaul", 1)
    print("UNTRUSTED OK")
except ssl.SSLCertVerificationError:
    print("untrusted refused")
"#,
        &[&https(&cluster.balancer), ca],
    );
    assert!(out.starts_with("Team Gaul has:\n"), "{out}");
    assert!(out.contains(&format!("\n{}\n", TEAMS.len())), "{out}");
    assert!(out.contains("untrusted refused"), "{out}");
}

/// Property: a TLS port answers plain HTTP with a plain 400 that says to
/// use https (our client sees that status); a client trusting another CA
/// fails the handshake with an error naming the certificate problem, which
/// counts as a connect error (nothing was sent); a client trusting no CA
/// refuses an https URL at once.
#[test]
fn clients_that_cannot_speak_tls_or_do_not_trust_the_ca_fail_clearly() {
    let pki = Pki::new();
    let mut args = vec!["--port".to_owned(), "0".into()];
    // The echo server is no client: no --tls-ca.
    args.extend(pki.flags().into_iter().take(4));
    let server = Process::spawn(support::example_bin("xmlrpc_echo"), &args, &[]);
    let ping = [Value::from("ping")];

    let trusted = podium::rpc::Client::new(
        &https(&server),
        pki.client("ca.pem", Duration::from_secs(5)),
    )
    .expect("an https URL");
    let echoed = runtime().block_on(trusted.call("echo", &ping));
    assert_eq!(
        echoed.ok(),
        Some(Value::from("ping")),
        "the control case works"
    );

    let resp = http_post(server.addr(), "/", &[], b"<methodCall/>");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("https"), "{}", resp.text());
    let plain = podium::rpc::Client::new(&server.url(), ClientConfig::default()).expect("a URL");
    let err = runtime()
        .block_on(plain.call("echo", &ping))
        .expect_err("plain HTTP to a TLS port");
    assert!(
        matches!(err, ClientError::Status(s) if s.as_u16() == 400),
        "{err:?}"
    );

    let wrong = podium::rpc::Client::new(
        &https(&server),
        pki.client("other-ca.pem", Duration::from_secs(5)),
    )
    .expect("an https URL");
    let err = runtime()
        .block_on(wrong.call("echo", &ping))
        .expect_err("an untrusted certificate");
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    assert!(err.is_connect(), "nothing was sent: {err:?}");
    let text = err.to_string();
    assert!(
        text.contains("certificate") && text.contains("UnknownIssuer"),
        "{text}"
    );

    let err = podium::rpc::Client::new(&https(&server), ClientConfig::default())
        .expect_err("https with no CA");
    assert!(matches!(err, ClientError::NoTrust(_)), "{err:?}");

    // The server is fine after all that.
    let echoed = runtime().block_on(trusted.call("echo", &ping));
    assert_eq!(echoed.ok(), Some(Value::from("ping")));
}
