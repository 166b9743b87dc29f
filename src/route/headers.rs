//! Which client request headers reach a provider: an allow-list per provider.
//!
//! A deny-list lets through whatever it forgot: `OpenAI-Organization` choosing the billing
//! scope of the gateway's key, cookies, encodings the gateway never decoded, `X-Forwarded-*`.
//! So a provider is sent only the headers its kind documents for clients to set, plus the
//! names its config adds (`forward_headers`, exact names or `prefix*`); framing, hop-by-hop
//! and credential headers are written by the gateway itself and never copied. Headers the
//! client's `Connection` header names are hop-by-hop (RFC 9110 §7.6.1) and end at the gateway
//! even when allowed ([`crate::http::HeaderList::has_token`] finds them).

use crate::wire::WireApi;

/// Headers every provider may get from the client.
const COMMON: &[&str] = &["accept", "user-agent", "traceparent", "tracestate"];
/// OpenAI-family wire formats (Chat Completions, Responses): opt-in betas.
const OPENAI: &[&str] = &["openai-beta"];
/// Anthropic Messages: the API version and betas.
const ANTHROPIC: &[&str] = &["anthropic-version", "anthropic-beta"];

/// Names that are never forwarded, whatever the config says: the gateway frames the request,
/// holds the connection and sends the provider's credential itself.
const NEVER: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
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
    "content-encoding",
    "content-type",
    "cookie",
];

/// The client headers one provider is sent.
#[derive(Debug, Clone, Default)]
pub struct HeaderAllowList {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl HeaderAllowList {
    /// The defaults for a provider speaking `wire`, plus `extra` from its config.
    pub fn new(wire: WireApi, extra: &[String]) -> Self {
        let family: &[&str] = match wire {
            WireApi::Chat | WireApi::Responses => OPENAI,
            WireApi::Messages => ANTHROPIC,
            WireApi::Gemini | WireApi::Converse => &[],
        };
        let mut list = Self::default();
        for name in COMMON.iter().chain(family).map(|s| s.to_string()).chain(
            extra
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty()),
        ) {
            match name.strip_suffix('*') {
                Some(prefix) => list.prefixes.push(prefix.to_string()),
                None => list.exact.push(name),
            }
        }
        list
    }

    /// Whether `name` may be forwarded (before the `Connection` header's own list is applied).
    pub fn allows(&self, name: &str) -> bool {
        if NEVER.iter().any(|n| name.eq_ignore_ascii_case(n)) || starts_with_ci(name, "x-infergate")
        {
            return false;
        }
        self.exact.iter().any(|e| name.eq_ignore_ascii_case(e))
            || self.prefixes.iter().any(|p| starts_with_ci(name, p))
    }

    /// Checks config entries: a name the gateway never forwards can't be allowed.
    pub fn refused_entry(extra: &[String]) -> Option<&str> {
        extra.iter().map(String::as_str).find(|e| {
            let e = e.trim();
            NEVER.iter().any(|n| e.eq_ignore_ascii_case(n)) || e == "*"
        })
    }
}

fn starts_with_ci(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_wire_format() {
        let openai = HeaderAllowList::new(WireApi::Chat, &[]);
        for h in ["OpenAI-Beta", "user-agent", "Accept", "traceparent"] {
            assert!(openai.allows(h), "{h}");
        }
        for h in [
            "OpenAI-Organization",
            "OpenAI-Project",
            "Content-Encoding",
            "Content-Range",
            "Cookie",
            "X-Forwarded-For",
            "anthropic-beta",
            "x-mock-fault",
            "Authorization",
            "Host",
        ] {
            assert!(!openai.allows(h), "{h}");
        }
        let anthropic = HeaderAllowList::new(WireApi::Messages, &[]);
        assert!(anthropic.allows("anthropic-beta"));
        assert!(!anthropic.allows("openai-beta"));
    }

    #[test]
    fn config_adds_names_and_prefixes_but_never_credentials() {
        let list = HeaderAllowList::new(
            WireApi::Gemini,
            &["x-mock-*".to_string(), "X-Team".to_string()],
        );
        assert!(list.allows("x-mock-fault"));
        assert!(list.allows("x-team"));
        assert!(!list.allows("x-other"));
        assert_eq!(
            HeaderAllowList::refused_entry(&["Cookie".into()]),
            Some("Cookie")
        );
        assert_eq!(HeaderAllowList::refused_entry(&["*".into()]), Some("*"));
        assert_eq!(HeaderAllowList::refused_entry(&["x-ok".into()]), None);
    }
}
