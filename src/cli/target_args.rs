//! Where a client binary sends its calls: `--server URL`, or the old
//! `--serip`/`--serport`.

use std::net::Ipv4Addr;

use super::HostPort;

/// The server a client binary talks to (normally the balancer), in the new
/// form (`--server URL`) or the old one (`--serip`/`--serport`). Global, so
/// a binary with subcommands takes them after the subcommand too.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Server")]
pub struct TargetArgs {
    /// Server URL (normally the balancer's). Overrides --serip/--serport.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// Server host, HOST or HOST:PORT, as the old system named it [default: 127.0.0.1].
    #[arg(long, global = true)]
    pub serip: Option<HostPort>,
    /// Server port, as the old system named it [default: 8001].
    #[arg(long, global = true)]
    pub serport: Option<u16>,
}

impl TargetArgs {
    /// True when the old flags name the server.
    pub fn is_old_style(&self) -> bool {
        self.server.is_none() && (self.serip.is_some() || self.serport.is_some())
    }

    /// The server's URL.
    ///
    /// # Errors
    /// `--serip` with a port and `--serport` too.
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.server {
            return Ok(url.clone());
        }
        let serip = self.serip.clone().unwrap_or_else(|| HostPort {
            host: Ipv4Addr::LOCALHOST.to_string(),
            port: None,
        });
        let port = match (serip.port, self.serport) {
            (Some(a), Some(b)) if a != b => {
                anyhow::bail!("--serip {serip} and --serport {b} give two different ports")
            }
            (Some(port), _) | (None, Some(port)) => port,
            (None, None) => crate::balancer::DEFAULT_PORT,
        };
        Ok(serip.url(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_server_flags_make_one_url() {
        use clap::Parser as _;
        #[derive(Debug, clap::Parser)]
        struct T {
            #[command(flatten)]
            target: TargetArgs,
        }
        let url = |args: &[&str]| {
            T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .map_err(|e| e.to_string())
                .and_then(|t| t.target.url().map_err(|e| e.to_string()))
        };
        assert_eq!(url(&[]).unwrap(), "http://127.0.0.1:8001/");
        assert_eq!(
            url(&["--serip=localhost", "--serport=8001"]).unwrap(),
            "http://localhost:8001/"
        );
        assert_eq!(
            url(&["--serip=10.0.0.4:9001"]).unwrap(),
            "http://10.0.0.4:9001/"
        );
        assert_eq!(url(&["--serip=::1"]).unwrap(), "http://[::1]:8001/");
        assert!(url(&["--serip=h:1", "--serport=2"]).is_err());
        assert!(url(&["--serip=h:99999"]).is_err());
    }
}
