//! Which provider response headers reach the client (the request direction is
//! [`crate::route::HeaderAllowList`], per provider).

/// Provider response headers passed back to the client (an allow-list: providers' own
/// tracing and rate-limit headers, never cookies or connection management).
pub fn pass_to_client(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "content-type",
        "cache-control",
        "retry-after",
        "retry-after-ms",
        "x-request-id",
        "request-id",
        "openai-processing-ms",
        "openai-version",
    ];
    const PREFIX: &[&str] = &["x-ratelimit-", "anthropic-ratelimit-"];
    EXACT.iter().any(|e| name.eq_ignore_ascii_case(e))
        || PREFIX.iter().any(|p| {
            name.len() > p.len()
                && name
                    .get(..p.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(p))
        })
}

/// A provider's `x-ratelimit-*` header: not passed on when the gateway reports the key's
/// own limits under the same names.
pub fn is_rate_limit_header(name: &str) -> bool {
    const P: &str = "x-ratelimit-";
    name.get(..P.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(P))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_headers_come_back() {
        assert!(pass_to_client("x-ratelimit-remaining-requests"));
        assert!(pass_to_client("Content-Type"));
        assert!(!pass_to_client("set-cookie"));
        assert!(!pass_to_client("transfer-encoding"));
    }
}
