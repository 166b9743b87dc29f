//! Behaviour knobs: process-wide defaults (CLI) and their per-request overrides (headers).

use std::time::Duration;

use super::fault::Fault;

/// Process-wide defaults for every request, set from the command line.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Delay before the first token (streaming) or before the whole answer.
    pub ttft: Duration,
    /// Delay between tokens.
    pub itl: Duration,
    /// Tokens in each completion (before `max_tokens` truncation).
    pub tokens: u32,
    /// Pad non-streaming chat bodies to about this many bytes.
    pub body_bytes: Option<usize>,
    /// Fault injected with probability `fault_rate` when a request names none.
    pub fault: Option<Fault>,
    /// Probability in [0, 1] of injecting `fault`.
    pub fault_rate: f64,
    /// Model ids listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// Embedding size when the request does not set `dimensions`.
    pub embedding_dimensions: usize,
    /// AWS secret key Bedrock requests' SigV4 signatures are checked with
    /// (`MOCKLLM_AWS_SECRET_ACCESS_KEY`); `None`: only the form of the signature is checked.
    pub aws_secret_access_key: Option<String>,
    /// The only AWS access key id accepted (`MOCKLLM_AWS_ACCESS_KEY_ID`); `None`: any.
    pub aws_access_key_id: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            tokens: 16,
            body_bytes: None,
            fault: None,
            fault_rate: 0.0,
            models: vec![
                "gpt-4o-mini".to_string(),
                "gpt-4o".to_string(),
                "text-embedding-3-small".to_string(),
            ],
            embedding_dimensions: 1536,
            aws_secret_access_key: None,
            aws_access_key_id: None,
        }
    }
}

/// The knobs in effect for one request: the defaults, overridden by `x-mock-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestKnobs {
    /// `x-mock-ttft-ms`.
    pub ttft: Duration,
    /// `x-mock-itl-ms`.
    pub itl: Duration,
    /// `x-mock-tokens`.
    pub tokens: u32,
    /// `x-mock-body-bytes`.
    pub body_bytes: Option<usize>,
    /// `x-mock-fault` (explicit), or the CLI fault drawn with its probability.
    pub fault: Option<Fault>,
    /// `x-mock-tool-calls`: answer with this many tool calls when the request has tools.
    pub tool_calls: Option<u32>,
    /// `x-mock-replies`: the exact reply text, instead of the echo (see [`scripted_reply`]).
    pub reply: Option<&'static str>,
    /// `x-mock-ratelimit-remaining`: the answer carries OpenAI's rate-limit headers
    /// (`x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` with this value,
    /// `x-ratelimit-reset-requests: 1s`), as OpenAI sends them on every answer.
    pub ratelimit_remaining: Option<u32>,
}

impl RequestKnobs {
    /// The rate-limit headers of an answer (empty without `x-mock-ratelimit-remaining`).
    pub fn ratelimit_headers(&self) -> String {
        self.ratelimit_remaining.map_or_else(String::new, |left| {
            format!(
                "x-ratelimit-limit-requests: 10000\r\nx-ratelimit-remaining-requests: {left}\r\nx-ratelimit-reset-requests: 1s\r\n"
            )
        })
    }

    /// The defaults of `config`, before headers; the CLI fault is drawn here.
    pub fn from_config(config: &MockConfig) -> Self {
        let fault = match config.fault {
            Some(f) if config.fault_rate >= 1.0 || fastrand::f64() < config.fault_rate => Some(f),
            _ => None,
        };
        Self {
            ttft: config.ttft,
            itl: config.itl,
            tokens: config.tokens,
            body_bytes: config.body_bytes,
            fault,
            tool_calls: None,
            reply: None,
            ratelimit_remaining: None,
        }
    }

    /// Applies one request header if it is an `x-mock-*` knob.
    /// Returns an error message for a knob with a bad value.
    pub fn apply_header(&mut self, name: &str, value: &[u8]) -> Result<(), String> {
        if name.len() < 7 || !name[..7].eq_ignore_ascii_case("x-mock-") {
            return Ok(());
        }
        let value = std::str::from_utf8(value)
            .map_err(|_| format!("{name} is not UTF-8"))?
            .trim();
        let bad = || format!("invalid value {value:?} for header {name}");
        let knob = &name[7..];
        if knob.eq_ignore_ascii_case("ttft-ms") {
            self.ttft = Duration::from_millis(value.parse().map_err(|_| bad())?);
        } else if knob.eq_ignore_ascii_case("itl-ms") {
            self.itl = Duration::from_millis(value.parse().map_err(|_| bad())?);
        } else if knob.eq_ignore_ascii_case("tokens") {
            self.tokens = value.parse().map_err(|_| bad())?;
        } else if knob.eq_ignore_ascii_case("body-bytes") {
            self.body_bytes = Some(value.parse().map_err(|_| bad())?);
        } else if knob.eq_ignore_ascii_case("tool-calls") {
            match value.parse() {
                Ok(n @ 1..=16) => self.tool_calls = Some(n),
                _ => return Err(bad()),
            }
        } else if knob.eq_ignore_ascii_case("ratelimit-remaining") {
            self.ratelimit_remaining = Some(value.parse().map_err(|_| bad())?);
        } else if knob.eq_ignore_ascii_case("replies") {
            self.reply = Some(scripted_reply(value).map_err(|e| format!("{name}: {e}"))?);
        } else if knob.eq_ignore_ascii_case("fault") {
            self.fault = if value == "none" {
                None
            } else {
                Some(
                    value
                        .parse()
                        .map_err(|e: super::FaultParseError| e.to_string())?,
                )
            };
        }
        Ok(())
    }
}

/// Most distinct scripted replies one mockllm process keeps.
const MAX_SCRIPTED: usize = 4096;
/// Most replies in one script, and the longest reply.
const MAX_SCRIPT_LEN: usize = 16;
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// How many requests each script (`x-mock-replies` value) has answered, and the replies
/// handed out (kept for the process's life so knobs stay `Copy`; bounded).
static SCRIPTS: std::sync::LazyLock<std::sync::Mutex<Scripts>> =
    std::sync::LazyLock::new(Default::default);

#[derive(Default)]
struct Scripts {
    served: std::collections::HashMap<String, usize>,
    texts: std::collections::HashSet<&'static str>,
}

/// `x-mock-replies: ["first", "second", …]` (a JSON array of strings): the n-th request
/// carrying the same header value is answered with the n-th reply, the last one once the
/// script runs out, in every dialect, streamed or not. Tests use it to make a provider
/// answer differently on a retry (invalid JSON first, valid JSON next).
pub fn scripted_reply(value: &str) -> Result<&'static str, String> {
    let replies: Vec<String> =
        serde_json::from_str(value).map_err(|e| format!("not a JSON array of strings: {e}"))?;
    if replies.is_empty() || replies.len() > MAX_SCRIPT_LEN {
        return Err(format!("1 to {MAX_SCRIPT_LEN} replies"));
    }
    if replies.iter().any(|r| r.len() > MAX_REPLY_BYTES) {
        return Err(format!("a reply is over {MAX_REPLY_BYTES} bytes"));
    }
    let mut scripts = SCRIPTS
        .lock()
        .map_err(|_| "script table poisoned".to_string())?;
    let served = scripts.served.entry(value.to_string()).or_insert(0);
    let pick = (*served).min(replies.len() - 1);
    *served += 1;
    let text = replies.into_iter().nth(pick).unwrap_or_default();
    if let Some(known) = scripts.texts.get(text.as_str()) {
        return Ok(known);
    }
    if scripts.texts.len() >= MAX_SCRIPTED {
        return Err(format!(
            "more than {MAX_SCRIPTED} distinct scripted replies"
        ));
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    scripts.texts.insert(leaked);
    Ok(leaked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn headers_override_defaults() {
        let mut k = RequestKnobs::from_config(&MockConfig::default());
        k.apply_header("X-Mock-TTFT-ms", b"25").unwrap();
        k.apply_header("x-mock-tokens", b"3").unwrap();
        k.apply_header("x-mock-fault", b"status:429").unwrap();
        k.apply_header("content-type", b"whatever").unwrap();
        assert_eq!(k.ttft, Duration::from_millis(25));
        assert_eq!(k.tokens, 3);
        assert_eq!(k.fault, Some(Fault::Status(429)));
        assert!(k.apply_header("x-mock-itl-ms", b"soon").is_err());
        assert!(k.apply_header("x-mock-replies", b"[]").is_err());
        assert!(k.apply_header("x-mock-replies", b"not json").is_err());
    }

    #[test]
    fn cli_fault_drawn_with_probability() {
        let config = MockConfig {
            fault: Some(Fault::Reset),
            fault_rate: 1.0,
            ..MockConfig::default()
        };
        assert_eq!(RequestKnobs::from_config(&config).fault, Some(Fault::Reset));
        let never = MockConfig {
            fault_rate: 0.0,
            ..config
        };
        assert_eq!(RequestKnobs::from_config(&never).fault, None);
    }

    #[test]
    fn a_script_answers_in_order_then_repeats_its_last_reply() {
        let script = r#"["not json", "{\"ok\": true}", "test-config-script"]"#;
        let replies: Vec<_> = (0..4).map(|_| scripted_reply(script).unwrap()).collect();
        assert_eq!(
            replies,
            [
                "not json",
                "{\"ok\": true}",
                "test-config-script",
                "test-config-script"
            ]
        );
    }
}
