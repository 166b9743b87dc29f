//! The one URL a run targets: `http://host:port/path` (plain HTTP only).

use std::net::{SocketAddr, ToSocketAddrs};

/// Default path when the URL has none.
const DEFAULT_PATH: &str = "/v1/chat/completions";

/// A URL that is not `http://host[:port][/path]` or does not resolve.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not an `http://` URL.
    #[error("only http:// URLs are supported: {0}")]
    Scheme(String),
    /// Host or port could not be resolved.
    #[error("cannot resolve {0}")]
    Resolve(String),
}

/// Where requests go: the resolved address, the `Host` header and the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Resolved socket address (the first one).
    pub addr: SocketAddr,
    /// Value of the `Host` header.
    pub host: String,
    /// Path and query; `/v1/chat/completions` when the URL has none.
    pub path: String,
}

impl Target {
    /// Parses and resolves `url`.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = if path.is_empty() || path == "/" {
            DEFAULT_PATH.to_string()
        } else {
            path.to_string()
        };
        let with_port = if authority.rsplit(':').next().is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && authority.contains(':')
        }) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| TargetError::Resolve(authority.to_string()))?;
        Ok(Self {
            addr,
            host: authority.to_string(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.path, "/v1/chat/completions");
        assert_eq!(t.host, "127.0.0.1:8080");
        let t = Target::parse("http://127.0.0.1:9/v1/embeddings").unwrap();
        assert_eq!(t.path, "/v1/embeddings");
        assert!(Target::parse("https://127.0.0.1").is_err());
    }
}
