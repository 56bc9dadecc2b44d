//! `podium-feeder` as a newcomer meets it, against a real cluster on
//! loopback: no command prints help and writes nothing; options go after
//! the command too; results and errors are one line of words; a write
//! refused as rate limited is retried after the wait the server names, and
//! lands once; the shipped `examples/updates.txt` applies as the README
//! says.

mod cluster_support;
mod netns_support;
mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cluster_support::{db_snapshot, Cluster, ClusterConfig, Rpc, PASSWORD};
use netns_support::output_within;
use podium::api::faults;
use podium::rpc::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `podium-feeder args` with no password in the environment (give
/// `--password-file`), no backtrace asked for, and logs at warn.
fn feeder(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podium-feeder"));
    cmd.args(args)
        .env_remove("PODIUM_FEEDER_PASSWORD")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("RUST_LOG", "warn");
    output_within(cmd, RUN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// A file in `dir` holding the feeder password; its path.
fn password_file(dir: &std::path::Path) -> String {
    let file = dir.join("feeder-password");
    std::fs::write(&file, PASSWORD).expect("writing the password file");
    file.to_str().expect("a UTF-8 temp path").to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cluster() -> Cluster {
    Cluster::start(ClusterConfig {
        frontends: vec![cluster_support::Mode::Push],
        ..ClusterConfig::default()
    })
}

#[test]
fn no_command_prints_help_and_writes_nothing() {
    let cluster = cluster();
    let before = db_snapshot(&cluster.db_url());
    let url = cluster.balancer_url();
    let out = feeder(&["--server", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let help = text(&out.stderr);
    assert!(help.contains("Usage: podium-feeder"), "{help}");
    assert!(
        help.contains("simulate") && help.contains("RUST_LOG"),
        "{help}"
    );
    assert_eq!(db_snapshot(&cluster.db_url()), before, "it wrote something");
}

#[test]
fn options_after_the_command_and_results_in_words() {
    let cluster = cluster();
    let url = cluster.balancer_url();
    let pw = password_file(cluster.dir());
    let out = feeder(&[
        "award",
        "Gaul",
        "gold",
        "--server",
        &url,
        "--password-file",
        &pw,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Medal tally of Gaul updated: 1 gold, 0 silver, 0 bronze (version "),
        "{stdout}"
    );
    assert_eq!(cluster.balancer().tally("Gaul").gold, 1);
}

#[test]
fn a_failure_is_one_line_of_words() {
    let cluster = cluster();
    let url = cluster.balancer_url();
    let dir = cluster.dir();
    let wrong = dir.join("wrong-password");
    std::fs::write(&wrong, "not the password").expect("writing a file");
    let wrong = wrong.to_str().expect("a UTF-8 temp path");
    let cases: [(&[&str], &str); 3] = [
        (
            &["award", "Gaul", "gold", "--password-file", wrong],
            "podium-feeder: error: gold medal to Gaul failed: the server refused it: wrong password (fault 1)",
        ),
        (
            &["set-score", "Stone Curlin", "1-0"],
            "podium-feeder: error: score of Stone Curlin set to \"1-0\" failed: the server refused it:",
        ),
        (
            &["apply", "no-such-file.txt"],
            "podium-feeder: error: reading no-such-file.txt: No such file or directory",
        ),
    ];
    let pw = password_file(dir);
    for (args, want) in cases {
        let mut all = vec!["--server", &url];
        all.extend_from_slice(args);
        if !args.contains(&"--password-file") {
            all.extend(["--password-file", &pw]);
        }
        let out = feeder(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: not one line:\n{stderr}"
        );
        assert!(stderr.starts_with(want), "{args:?}:\n{stderr}");
        assert!(!stderr.contains('{'), "a debug struct in {stderr}");
    }
}

#[test]
fn a_rate_limited_write_waits_as_told_then_lands_once() {
    let cluster = cluster();
    // Straight to the front-end, so that it sees this test's address for
    // the wrong passwords and the feeder's alike (127.0.0.1).
    let frontend = cluster.frontends[0].url();
    let fe = Rpc::new(&frontend);
    let wrong = |fe: &Rpc| {
        fe.fault(
            "increment_medal_tally",
            &[
                Value::from("Rome"),
                Value::from("gold"),
                Value::from("wrong"),
            ],
        )
    };
    let limited = (0..20)
        .map(|_| wrong(&fe))
        .find(|f| f.code == faults::RATE_LIMITED)
        .expect("rate limited after a burst of wrong passwords");
    let told = faults::retry_after(&limited).expect("the refusal says how long to wait");
    let started = Instant::now();
    let pw = password_file(cluster.dir());
    let out = feeder(&[
        "--server",
        &frontend,
        "award",
        "Rome",
        "silver",
        "--password-file",
        &pw,
    ]);
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("too many failed password attempts; retry in")
            && stderr.contains("trying again in"),
        "the wait is not said:\n{stderr}"
    );
    // It waited about as long as told (the bucket refills meanwhile), not
    // a fixed backoff.
    assert!(
        took >= told.saturating_sub(Duration::from_millis(300)),
        "{took:?} < {told:?}"
    );
    let tally = fe.tally("Rome");
    assert_eq!((tally.gold, tally.silver), (0, 1), "{tally:?}");
}

#[test]
fn the_shipped_updates_file_applies() {
    let cluster = cluster();
    let url = cluster.balancer_url();
    let pw = password_file(cluster.dir());
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/updates.txt");
    let out = feeder(&["apply", file, "--server", &url, "--password-file", &pw]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(
        stdout.contains("Score of Stone Curling updated"),
        "{stdout}"
    );
    let b = cluster.balancer();
    assert_eq!(b.tally("Gaul").gold, 1);
    assert_eq!(b.tally("Carthage").bronze, 1);
    assert!(b.score("Stone Curling").score.contains("Gaul 3, Rome 1"));
}
