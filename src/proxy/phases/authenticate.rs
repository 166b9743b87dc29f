//! Authenticate: the gateway key a client presents, checked before any body is read or any
//! upstream work is done.

use super::super::outcome::{Next, Outcome};
use super::super::session::Session;
use crate::api::{ApiError, ErrorKind};
use crate::http::RequestHead;
use crate::policy::KeyCheck;

/// Accepts the request's key (noting its name in the record), or refuses it.
pub fn key(s: &mut Session<'_>) -> Next {
    match s.table.keys.check(presented_key(&s.head)) {
        KeyCheck::Open => Ok(()),
        KeyCheck::Accepted(name) => {
            s.record.key = Some(name.to_string());
            if let Some(profile) = s.table.governance.tenancy.get(&name) {
                s.record.tenant = profile.tenant.clone();
                s.record.region = profile.region.clone();
                if !profile.metadata.is_empty() {
                    s.record.metadata = Some(std::sync::Arc::clone(&profile.metadata));
                }
                s.profile = Some(std::sync::Arc::clone(profile));
            }
            Ok(())
        }
        KeyCheck::Missing => Err(Outcome::Fail(ApiError::new(
            ErrorKind::Authentication,
            "missing_api_key",
            "You didn't provide an API key. Send a gateway key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
        ))),
        KeyCheck::Rejected => Err(Outcome::Fail(ApiError::new(
            ErrorKind::Authentication,
            "invalid_api_key",
            "Incorrect API key provided.",
        ))),
    }
}

/// The gateway key a client presented: `Authorization: Bearer K` or `x-api-key: K`.
fn presented_key(head: &RequestHead) -> Option<&[u8]> {
    if let Some(v) = head.headers.get("authorization") {
        let v = v.trim_ascii();
        if let Some((scheme, key)) = v.split_at_checked(7) {
            if scheme.eq_ignore_ascii_case(b"bearer ") && !key.is_empty() {
                return Some(key.trim_ascii());
            }
        }
    }
    head.headers.get("x-api-key").map(<[u8]>::trim_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> RequestHead {
        let text = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
        RequestHead::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_key_comes_from_bearer_or_x_api_key() {
        let h = head("authorization: Bearer  sk-a \r\n");
        assert_eq!(presented_key(&h), Some(&b"sk-a"[..]));
        let h = head("authorization: bearer sk-b\r\n");
        assert_eq!(presented_key(&h), Some(&b"sk-b"[..]));
        let h = head("x-api-key: sk-c\r\n");
        assert_eq!(presented_key(&h), Some(&b"sk-c"[..]));
        assert_eq!(presented_key(&head("authorization: Basic abc\r\n")), None);
        assert_eq!(presented_key(&head("")), None);
    }
}
