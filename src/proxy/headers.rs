//! Which headers cross the gateway, in each direction.

/// Client request headers that are not forwarded upstream: hop-by-hop and framing headers,
/// the gateway's own credentials, and encodings the gateway must be able to read.
pub fn forward_to_upstream(name: &str) -> bool {
    const DROP: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "accept-encoding",
        "content-type",
    ];
    !(DROP.iter().any(|d| name.eq_ignore_ascii_case(d))
        || name.len() >= 11 && name[..11].eq_ignore_ascii_case("x-infergate"))
}

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
        || PREFIX
            .iter()
            .any(|p| name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_framing_stay_behind() {
        for h in [
            "Authorization",
            "x-api-key",
            "Host",
            "Content-Length",
            "X-Infergate-Cache",
        ] {
            assert!(!forward_to_upstream(h), "{h}");
        }
        for h in ["OpenAI-Beta", "x-mock-fault", "user-agent"] {
            assert!(forward_to_upstream(h), "{h}");
        }
    }

    #[test]
    fn only_known_headers_come_back() {
        assert!(pass_to_client("x-ratelimit-remaining-requests"));
        assert!(pass_to_client("Content-Type"));
        assert!(!pass_to_client("set-cookie"));
        assert!(!pass_to_client("transfer-encoding"));
    }
}
