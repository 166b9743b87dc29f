//! Gateway keys: the gateway's own credentials (never a provider's), kept as SHA-256 hashes.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, ConfigError};

/// The accepted keys, by the SHA-256 of the secret.
///
/// Lookup hashes the presented key, finds the candidate by its digest, then confirms it with a
/// constant-time comparison. Timing can at most reveal something about a SHA-256 digest, which
/// says nothing useful about any key (preimage resistance); the secret itself is never compared
/// byte by byte.
#[derive(Debug, Default)]
pub struct GatewayKeys {
    by_digest: HashMap<[u8; 32], Arc<str>>,
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// No keys are configured: the gateway runs open.
    Open,
    /// A configured key matched; carries its name.
    Accepted(Arc<str>),
    /// No key was presented.
    Missing,
    /// A key was presented and matches none.
    Rejected,
}

impl GatewayKeys {
    /// Compiles the `[auth]` section; refuses malformed hashes and duplicate names.
    pub fn compile(cfg: &AuthConfig) -> Result<Self, ConfigError> {
        let mut by_digest = HashMap::new();
        for k in &cfg.keys {
            let raw = hex::decode(k.sha256.trim()).map_err(|_| {
                ConfigError::Invalid(format!("auth key {:?}: sha256 is not hex", k.name))
            })?;
            let digest: [u8; 32] = raw.try_into().map_err(|_| {
                ConfigError::Invalid(format!(
                    "auth key {:?}: sha256 must be 64 hex digits",
                    k.name
                ))
            })?;
            if by_digest
                .insert(digest, Arc::from(k.name.as_str()))
                .is_some()
            {
                return Err(ConfigError::Invalid(format!(
                    "auth key {:?}: the same hash is listed twice",
                    k.name
                )));
            }
        }
        Ok(Self { by_digest })
    }

    /// True when no keys are configured.
    pub fn is_open(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Checks a presented key (from `Authorization: Bearer` or `x-api-key`).
    pub fn check(&self, presented: Option<&[u8]>) -> KeyCheck {
        if self.is_open() {
            return KeyCheck::Open;
        }
        let Some(key) = presented else {
            return KeyCheck::Missing;
        };
        let digest: [u8; 32] = Sha256::digest(key).into();
        match self.by_digest.get_key_value(&digest) {
            Some((stored, name)) if bool::from(stored.ct_eq(&digest)) => {
                KeyCheck::Accepted(Arc::clone(name))
            }
            _ => KeyCheck::Rejected,
        }
    }
}

/// Hex SHA-256 of a key, as `[auth] keys` wants it (used by tests and the docs' example).
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyConfig;

    #[test]
    fn accepts_only_configured_keys() {
        let cfg = AuthConfig {
            keys: vec![KeyConfig {
                name: "team-a".into(),
                sha256: sha256_hex("ig-secret-1"),
                ..KeyConfig::default()
            }],
            ..AuthConfig::default()
        };
        let keys = GatewayKeys::compile(&cfg).unwrap();
        assert_eq!(
            keys.check(Some(b"ig-secret-1")),
            KeyCheck::Accepted(Arc::from("team-a"))
        );
        assert_eq!(keys.check(Some(b"ig-secret-2")), KeyCheck::Rejected);
        assert_eq!(keys.check(None), KeyCheck::Missing);
    }

    #[test]
    fn open_without_keys() {
        let keys = GatewayKeys::compile(&AuthConfig::default()).unwrap();
        assert_eq!(keys.check(None), KeyCheck::Open);
    }

    #[test]
    fn refuses_bad_hashes() {
        let cfg = AuthConfig {
            keys: vec![KeyConfig {
                name: "x".into(),
                sha256: "abcd".into(),
                ..KeyConfig::default()
            }],
            ..AuthConfig::default()
        };
        assert!(GatewayKeys::compile(&cfg).is_err());
    }
}
