//! Who may use the admin API: its own token for anything that changes state, and only
//! requests addressed to it (`Host`) from outside a browser (no `Origin`).
//!
//! Checking `Host` defeats DNS rebinding (a page whose name resolves to 127.0.0.1 reaching
//! the admin port); refusing `Origin` keeps web pages out altogether.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The admin API's credentials and the names it answers to.
#[derive(Clone)]
pub struct AdminAccess {
    token_sha256: Option<[u8; 32]>,
    hosts: Vec<String>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token_sha256.map(|_| "<set>"))
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// Why an admin request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminDenied {
    /// The request came from a web page.
    #[error("the admin API does not answer web pages (Origin header present)")]
    BrowserOrigin,
    /// `Host` is not one of the admin listener's names.
    #[error("unexpected Host header for the admin API")]
    WrongHost,
    /// No token is configured, so nothing may change state.
    #[error("the admin API is read-only: set [admin] token_env to allow changes")]
    ReadOnly,
    /// The token is missing or wrong.
    #[error("missing or invalid admin token (Authorization: Bearer <token>)")]
    BadToken,
}

impl AdminDenied {
    /// The HTTP status for the refusal.
    pub fn status(self) -> u16 {
        match self {
            AdminDenied::BadToken => 401,
            _ => 403,
        }
    }
}

impl AdminAccess {
    /// Access for a listener bound to `bound`, with `token` (None: read-only) and extra
    /// accepted `hosts`.
    pub fn new(bound: std::net::SocketAddr, token: Option<&str>, hosts: &[String]) -> Self {
        let port = bound.port();
        let mut names = vec![
            bound.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        names.extend(hosts.iter().map(|h| h.trim().to_ascii_lowercase()));
        Self {
            token_sha256: token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Sha256::digest(t.as_bytes()).into()),
            hosts: names,
        }
    }

    /// Whether state-changing calls are possible at all.
    pub fn has_token(&self) -> bool {
        self.token_sha256.is_some()
    }

    /// Checks a request: `host` and `origin` always, the bearer token when `mutation`.
    pub fn check(
        &self,
        host: Option<&[u8]>,
        origin: Option<&[u8]>,
        authorization: Option<&[u8]>,
        mutation: bool,
    ) -> Result<(), AdminDenied> {
        if origin.is_some() {
            return Err(AdminDenied::BrowserOrigin);
        }
        let host = host.map(<[u8]>::trim_ascii).unwrap_or_default();
        if !self
            .hosts
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
        {
            return Err(AdminDenied::WrongHost);
        }
        if !mutation {
            return Ok(());
        }
        let Some(want) = &self.token_sha256 else {
            return Err(AdminDenied::ReadOnly);
        };
        let presented = authorization
            .map(<[u8]>::trim_ascii)
            .and_then(|v| {
                let (scheme, rest) = v.split_at_checked(7)?;
                scheme
                    .eq_ignore_ascii_case(b"bearer ")
                    .then(|| rest.trim_ascii())
            })
            .ok_or(AdminDenied::BadToken)?;
        let got: [u8; 32] = Sha256::digest(presented).into();
        if bool::from(got.ct_eq(want)) {
            Ok(())
        } else {
            Err(AdminDenied::BadToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>) -> AdminAccess {
        AdminAccess::new("127.0.0.1:8081".parse().unwrap(), token, &[])
    }

    #[test]
    fn mutations_need_the_token() {
        let a = access(Some("s3cret"));
        let host = Some(&b"127.0.0.1:8081"[..]);
        assert_eq!(a.check(host, None, None, false), Ok(()));
        assert_eq!(a.check(host, None, None, true), Err(AdminDenied::BadToken));
        assert_eq!(
            a.check(host, None, Some(b"Bearer nope"), true),
            Err(AdminDenied::BadToken)
        );
        assert_eq!(a.check(host, None, Some(b"Bearer s3cret"), true), Ok(()));
        assert_eq!(
            access(None).check(host, None, Some(b"Bearer s3cret"), true),
            Err(AdminDenied::ReadOnly)
        );
    }

    #[test]
    fn host_and_origin_are_checked() {
        let a = access(Some("t"));
        assert_eq!(a.check(Some(b"localhost:8081"), None, None, false), Ok(()));
        assert_eq!(
            a.check(Some(b"evil.example:8081"), None, None, false),
            Err(AdminDenied::WrongHost)
        );
        assert_eq!(
            a.check(None, None, None, false),
            Err(AdminDenied::WrongHost)
        );
        assert_eq!(
            a.check(
                Some(b"127.0.0.1:8081"),
                Some(b"http://127.0.0.1:8081"),
                None,
                false
            ),
            Err(AdminDenied::BrowserOrigin)
        );
    }
}
