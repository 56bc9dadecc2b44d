//! The election group's flags: `--peer UID=HOST:PORT` members and the
//! timings, made into an [`ElectionConfig`](crate::election::config::ElectionConfig).

use super::{host_url, HostPort};

/// Membership of the election group and its timings. The old host flags
/// that also name members (`--xhost`, `--dbhost`, ...) belong to each
/// binary; it hands them to [`ElectionArgs::to_config`].
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cluster")]
pub struct ElectionArgs {
    /// Another member of the election group, `UID=HOST:PORT` (or `UID=URL`;
    /// HOST:PORT is https with --tls-ca); repeat for each.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(u32, PeerAddr)>,
    /// Milliseconds between heartbeats to the coordinator.
    #[arg(long, default_value_t = crate::election::config::DEFAULT_HEARTBEAT_INTERVAL_MS)]
    pub heartbeat_interval_ms: u64,
    /// Milliseconds without an answer after which the coordinator is presumed dead.
    #[arg(long, default_value_t = crate::election::config::DEFAULT_HEARTBEAT_TIMEOUT_MS)]
    pub heartbeat_timeout_ms: u64,
    /// Milliseconds between Berkeley clock-sync rounds (run by the coordinator).
    #[arg(long, default_value_t = crate::election::config::DEFAULT_SYNC_INTERVAL_MS)]
    pub sync_interval_ms: u64,
    /// Test only: skew this process's local clock by this many milliseconds.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_skew_ms: i64,
}

/// `UID=HOST:PORT` or `UID=URL` into the uid and the member's address;
/// [`ElectionArgs::peers`] makes it a URL once the scheme is known (https
/// with `--tls-ca`, which is installed after parsing).
fn parse_peer(s: &str) -> Result<(u32, PeerAddr), String> {
    let (uid, addr) = s.split_once('=').ok_or("expected UID=HOST:PORT")?;
    let uid = uid.trim().parse().map_err(|_| format!("bad uid {uid:?}"))?;
    if addr.contains("://") {
        return Ok((uid, PeerAddr::Url(addr.to_owned())));
    }
    let hp = HostPort::parse(addr).map_err(|e| e.to_string())?;
    let port = hp
        .port
        .ok_or("expected UID=HOST:PORT (the port is needed)")?;
    Ok((uid, PeerAddr::HostPort(hp.host, port)))
}

/// A `--peer` address as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Url(String),
    HostPort(String, u16),
}

impl PeerAddr {
    /// The URL as given, or [`host_url`] of the host and port.
    pub fn url(&self) -> String {
        match self {
            PeerAddr::Url(url) => url.clone(),
            PeerAddr::HostPort(host, port) => host_url(host, *port),
        }
    }
}

impl ElectionArgs {
    /// This process's cluster clock (skewed only when a test asks).
    pub fn clock(&self) -> crate::clock::ClusterClock {
        crate::clock::ClusterClock::with_skew_ms(self.clock_skew_ms)
    }

    /// Every other member's URL by uid: `old` (from the binary's old host
    /// flags), then `--peer`, which wins for a uid both name.
    pub fn peers(
        &self,
        uid: u32,
        old: &[(u32, String)],
    ) -> std::collections::BTreeMap<u32, String> {
        let mut peers: std::collections::BTreeMap<u32, String> = old.iter().cloned().collect();
        peers.extend(self.peers.iter().map(|(uid, addr)| (*uid, addr.url())));
        peers.remove(&uid);
        peers
    }

    /// The election config of member `uid` among `peers` (see
    /// [`ElectionArgs::peers`]).
    ///
    /// # Errors
    /// Invalid timings or membership.
    pub fn to_config(
        &self,
        uid: u32,
        peers: std::collections::BTreeMap<u32, String>,
        secret: crate::secret::Secret,
        clock: crate::clock::ClusterClock,
        vclock: crate::election::vclock::SharedClock,
    ) -> Result<crate::election::config::ElectionConfig, crate::election::config::ConfigError> {
        let config = crate::election::config::ElectionConfig {
            uid,
            peers,
            heartbeat_interval: std::time::Duration::from_millis(self.heartbeat_interval_ms),
            heartbeat_timeout: std::time::Duration::from_millis(self.heartbeat_timeout_ms),
            sync_interval: std::time::Duration::from_millis(self.sync_interval_ms),
            secret,
            clock,
            vclock,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_take_host_port_or_url() {
        let url = |s: &str| parse_peer(s).map(|(uid, addr)| (uid, addr.url()));
        assert_eq!(
            url("1=10.0.0.2:8002"),
            Ok((1, "http://10.0.0.2:8002/".to_owned()))
        );
        assert_eq!(
            url("2=[fd00::3]:8003"),
            Ok((2, "http://[fd00::3]:8003/".to_owned()))
        );
        assert_eq!(
            url("0=http://db:8000/"),
            Ok((0, "http://db:8000/".to_owned()))
        );
        assert!(parse_peer("1=10.0.0.2").is_err());
        assert!(parse_peer("x=10.0.0.2:1").is_err());
        assert!(parse_peer("10.0.0.2:1").is_err());
    }
}
