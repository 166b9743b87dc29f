//! What a gateway without keys (open mode) accepts from web pages.
//!
//! With no gateway key, any page a developer opens could make their browser POST to the
//! gateway on loopback and spend the provider keys. Browsers mark such requests with
//! `Origin`, and can only send them without a CORS preflight (which the gateway never grants)
//! as simple requests, whose content type is never JSON. So open mode refuses a foreign
//! `Origin` and a non-JSON POST body unless the operator allows them.

use crate::config::AuthConfig;

/// The open-mode rules for browser requests, compiled from `[auth]`.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    origins: Vec<String>,
    any_origin: bool,
    /// Accept POST bodies of any content type.
    pub any_content_type: bool,
}

impl BrowserPolicy {
    /// Compiles `allowed_origins` and `any_content_type`.
    pub fn compile(cfg: &AuthConfig) -> Self {
        Self {
            origins: cfg
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| o != "*")
                .collect(),
            any_origin: cfg.allowed_origins.iter().any(|o| o.trim() == "*"),
            any_content_type: cfg.any_content_type,
        }
    }

    /// Whether a request with this `Origin` header may proceed.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        if self.any_origin {
            return true;
        }
        let origin = origin.trim_ascii();
        let origin = origin.strip_suffix(b"/").unwrap_or(origin);
        self.origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> BrowserPolicy {
        BrowserPolicy::compile(&AuthConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..AuthConfig::default()
        })
    }

    #[test]
    fn only_listed_origins_pass() {
        let p = policy(&["https://app.example.com/"]);
        assert!(p.origin_allowed(b"https://app.example.com"));
        assert!(p.origin_allowed(b"HTTPS://APP.example.com"));
        assert!(!p.origin_allowed(b"https://evil.example"));
        assert!(!p.origin_allowed(b"null"));
        assert!(!policy(&[]).origin_allowed(b"http://127.0.0.1:8080"));
        assert!(policy(&["*"]).origin_allowed(b"https://anything"));
    }
}
