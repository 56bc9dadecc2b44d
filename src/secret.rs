//! Secrets (the feeder password, the cluster secret): read from an
//! environment variable or a file, never from a flag, so they never show in
//! `ps`; compared in constant time; never printed.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq as _;

/// Environment variable holding the feeder password.
pub const FEEDER_PASSWORD_ENV: &str = "PODIUM_FEEDER_PASSWORD";
/// Environment variable holding the cluster secret.
pub const CLUSTER_SECRET_ENV: &str = "PODIUM_CLUSTER_SECRET";

/// A secret string. `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct Secret(Arc<str>);

/// Why a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret is empty")]
    Empty,
    #[error("no secret given: set {env} or pass {flag}")]
    Missing {
        env: &'static str,
        flag: &'static str,
    },
}

impl Secret {
    /// A secret from its text.
    ///
    /// # Errors
    /// An empty secret.
    pub fn new(text: &str) -> Result<Secret, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(Arc::from(text)))
    }

    /// Reads the secret from `file` when given (trailing newline dropped),
    /// else from the environment variable `env`.
    ///
    /// # Errors
    /// An unreadable file, an empty secret, or neither source set.
    pub fn load(
        env: &'static str,
        file: Option<&Path>,
        flag: &'static str,
    ) -> Result<Secret, SecretError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                path: path.display().to_string(),
                source,
            })?;
            return Secret::new(text.trim_end_matches(['\r', '\n']));
        }
        match std::env::var(env) {
            Ok(text) => Secret::new(&text),
            Err(_) => Err(SecretError::Missing { env, flag }),
        }
    }

    /// Constant-time comparison (in the content; the length may leak).
    pub fn matches(&self, given: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }

    /// The secret itself, for sending it (as a header) to a peer.
    pub fn expose(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_never_prints() {
        let s = Secret::new("hunter2").unwrap();
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3") && !s.matches("hunter") && !s.matches(""));
        assert!(!format!("{s:?}").contains("hunter"));
        assert!(Secret::new("").is_err());
    }

    #[test]
    fn loads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let s = Secret::load("PODIUM_TEST_UNSET_VAR", Some(&path), "--pw").unwrap();
        assert!(s.matches("s3cret"));
        assert!(matches!(
            Secret::load("PODIUM_TEST_UNSET_VAR", None, "--pw"),
            Err(SecretError::Missing { .. })
        ));
    }
}
