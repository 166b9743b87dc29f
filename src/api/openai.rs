//! The borrowed view of an OpenAI-dialect request body: the few fields the gateway acts on,
//! read with simd-json from a scratch copy so the original bytes stay forwardable.

use simd_json::prelude::*;
use simd_json::{Buffers, Tape};

use super::json_scan::{find_top_level_value, JsonSpan};
use crate::wire::{Endpoint, Usage};

/// Why a request body was refused (each becomes a 400 naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestBodyError {
    /// Not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("request body must be a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing required parameter: '{0}'")]
    Missing(&'static str),
    /// A top-level key appears twice (in any spelling, escapes decoded). Providers disagree
    /// on which duplicate wins, so one could serve a model the gateway never chose.
    #[error("request body has the key '{0}' more than once")]
    DuplicateKey(String),
    /// A field has the wrong JSON type.
    #[error("invalid type for '{field}': expected {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
}

impl RequestBodyError {
    /// The field at fault, for the error's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Self::Missing(f) => Some(f),
            Self::WrongType { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// What the gateway needs from a chat or embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequestView {
    /// The model alias asked for.
    pub model: String,
    /// Where the `"model"` value (with its quotes) sits in the original bytes.
    pub model_span: JsonSpan,
    /// `"stream": true`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The client's max output tokens (`max_completion_tokens` or `max_tokens`, Messages'
    /// `max_tokens`, Responses' `max_output_tokens`); a negative or non-integer value is
    /// left for the provider to refuse.
    pub max_output_tokens: Option<u64>,
    /// The body has a top-level field that may ask for structured output (Chat
    /// `response_format`, Responses `text`, Messages `output_config`/`output_format`): only
    /// then does the schema phase read it.
    pub structured_output: bool,
    /// The request offers tools (a non-empty top-level `tools` array).
    pub tools: bool,
}

/// Bodies larger than this leave the scratch space reset to its small start size.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// Per-shard reusable buffers for parsing request bodies (no allocation per request once warm).
pub struct JsonScratch {
    bytes: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl Default for JsonScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonScratch {
    /// Empty scratch space.
    pub fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(16 * 1024),
            buffers: Buffers::new(16 * 1024),
            tape: Some(Tape::null()),
        }
    }

    /// Validates `body` as JSON and reads the view for `endpoint`.
    pub fn parse(
        &mut self,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<ChatRequestView, RequestBodyError> {
        self.bytes.clear();
        self.bytes.extend_from_slice(body);
        self.bytes.resize(body.len() + simd_json::INPUT_PADDING, 0);
        let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
        let result =
            simd_json::fill_tape_padded(&mut self.bytes, body.len(), &mut self.buffers, &mut tape)
                .map_err(|e| RequestBodyError::InvalidJson(e.to_string()))
                .and_then(|()| read_view(endpoint, &tape, body));
        self.tape = Some(tape.reset());
        if body.len() > SHRINK_ABOVE {
            // A large body grew the scratch space; don't keep that memory for the shard's life.
            *self = Self::new();
        }
        result
    }
}

fn read_view(
    endpoint: Endpoint,
    tape: &Tape<'_>,
    body: &[u8],
) -> Result<ChatRequestView, RequestBodyError> {
    let root = tape.as_value();
    let Some(object) = root.as_object() else {
        return Err(RequestBodyError::NotAnObject);
    };
    if let Some(key) = duplicate_key(object.keys()) {
        return Err(RequestBodyError::DuplicateKey(crate::api::bounded(key)));
    }
    let model = match root.get("model") {
        None => return Err(RequestBodyError::Missing("model")),
        Some(v) => v
            .as_str()
            .ok_or(RequestBodyError::WrongType {
                field: "model",
                expected: "a string",
            })?
            .to_string(),
    };
    let stream = match root.get("stream") {
        None => false,
        Some(v) if v.is_null() => false,
        Some(v) => v.as_bool().ok_or(RequestBodyError::WrongType {
            field: "stream",
            expected: "a boolean",
        })?,
    };
    let include_usage = root
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    endpoint_fields(endpoint, |field| root.get(field).map(FieldKind::of))?;
    let model_span =
        find_top_level_value(body, "model").ok_or(RequestBodyError::Missing("model"))?;
    let max_output_tokens = max_output_fields(endpoint)
        .iter()
        .find_map(|f| root.get(*f).and_then(|v| v.as_u64()));
    let structured_output = structured_output_fields(endpoint)
        .iter()
        .any(|f| root.get(*f).is_some_and(|v| !v.is_null()));
    let tools = root
        .get("tools")
        .and_then(|v| v.as_array())
        .is_some_and(|a| !a.is_empty());
    Ok(ChatRequestView {
        model,
        model_span,
        stream,
        include_usage,
        max_output_tokens,
        structured_output,
        tools,
    })
}

/// The top-level fields in which an endpoint's requests may ask for structured output.
pub fn structured_output_fields(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::ChatCompletions => &["response_format"],
        Endpoint::Messages => &["output_config", "output_format"],
        Endpoint::Responses => &["text"],
        _ => &[],
    }
}

/// The fields that carry an endpoint's max output tokens, the one providers prefer first.
pub fn max_output_fields(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::ChatCompletions => &["max_completion_tokens", "max_tokens"],
        Endpoint::Messages => &["max_tokens"],
        Endpoint::Responses => &["max_output_tokens"],
        _ => &[],
    }
}

/// `body` with its max output tokens set to `n`: each of the endpoint's fields that is
/// present is set, or the first one that every provider of the dialect reads is added
/// (`max_tokens` for Chat Completions). `None` when the endpoint has no such field or the
/// body is not a JSON object.
pub fn with_max_output_tokens(endpoint: Endpoint, body: &[u8], n: u64) -> Option<Vec<u8>> {
    let fields = max_output_fields(endpoint);
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let mut set = false;
    for f in fields {
        if let Some(slot) = v.get_mut(*f) {
            *slot = n.into();
            set = true;
        }
    }
    if !set {
        let added = if endpoint == Endpoint::ChatCompletions {
            "max_tokens"
        } else {
            fields.first()?
        };
        v.insert(added.to_string(), n.into());
    }
    serde_json::to_vec(&v).ok()
}

/// What a required field holds, as far as the gateway checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    String,
    Array,
    PositiveInteger,
    Other,
}

impl FieldKind {
    fn of(v: simd_json::tape::Value<'_, '_>) -> Self {
        if v.is_str() {
            FieldKind::String
        } else if v.is_array() {
            FieldKind::Array
        } else if v.as_u64().is_some() {
            FieldKind::PositiveInteger
        } else {
            FieldKind::Other
        }
    }
}

/// Checks the fields each endpoint requires besides `model`; `field` looks one up.
fn endpoint_fields(
    endpoint: Endpoint,
    field: impl Fn(&'static str) -> Option<FieldKind>,
) -> Result<(), RequestBodyError> {
    use FieldKind::{Array, PositiveInteger, String};
    let require = |name: &'static str, ok: &[FieldKind], expected: &'static str| match field(name) {
        None => Err(RequestBodyError::Missing(name)),
        Some(kind) if !ok.contains(&kind) => Err(RequestBodyError::WrongType {
            field: name,
            expected,
        }),
        Some(_) => Ok(()),
    };
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::CountTokens => {
            require("messages", &[Array], "an array")
        }
        Endpoint::Messages => {
            require("messages", &[Array], "an array")?;
            require("max_tokens", &[PositiveInteger], "a positive integer")
        }
        Endpoint::Embeddings | Endpoint::Responses => {
            require("input", &[String, Array], "a string or an array")
        }
        Endpoint::Models => Ok(()),
    }
}

/// The first key that appears twice, if any. Keys come unescaped from the tape, so
/// `"mod\u0065l"` and `"model"` are the same key. No allocation for the usual dozen keys.
fn duplicate_key<'a>(keys: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    const SMALL: usize = 16;
    let mut small: [&str; SMALL] = [""; SMALL];
    let mut n = 0;
    let mut many: Option<std::collections::HashSet<&str>> = None;
    for key in keys {
        if let Some(set) = many.as_mut() {
            if !set.insert(key) {
                return Some(key);
            }
            continue;
        }
        let seen = small.get(..n).unwrap_or_default();
        if seen.contains(&key) {
            return Some(key);
        }
        match small.get_mut(n) {
            Some(slot) => {
                *slot = key;
                n += 1;
            }
            None => {
                let mut set: std::collections::HashSet<&str> = small.iter().copied().collect();
                set.insert(key);
                many = Some(set);
            }
        }
    }
    None
}

/// Reading token usage out of raw response bytes, for the record (the streams' scanner and
/// whole non-streamed answers).
impl Usage {
    /// Reads a `usage` object: OpenAI's (`prompt_tokens`, `completion_tokens`, cached tokens
    /// in `prompt_tokens_details`) or Anthropic's (`input_tokens` + cache reads and writes,
    /// `output_tokens`).
    pub fn from_usage_json(usage: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Details {
            cached_tokens: Option<u64>,
        }
        #[derive(serde::Deserialize)]
        struct Raw {
            prompt_tokens: Option<u64>,
            completion_tokens: Option<u64>,
            prompt_tokens_details: Option<Details>,
            input_tokens: Option<u64>,
            output_tokens: Option<u64>,
            cache_read_input_tokens: Option<u64>,
            cache_creation_input_tokens: Option<u64>,
        }
        let raw: Raw = serde_json::from_slice(usage).ok()?;
        let output_tokens = raw.completion_tokens.or(raw.output_tokens).unwrap_or(0);
        Some(match raw.prompt_tokens {
            Some(prompt) => {
                let cached = raw
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0)
                    .min(prompt);
                Self {
                    input_tokens: prompt - cached,
                    output_tokens,
                    cache_read_tokens: cached,
                    cache_creation_tokens: 0,
                }
            }
            None => Self {
                input_tokens: raw.input_tokens.unwrap_or(0),
                output_tokens,
                cache_read_tokens: raw.cache_read_input_tokens.unwrap_or(0),
                cache_creation_tokens: raw.cache_creation_input_tokens.unwrap_or(0),
            },
        })
    }

    /// Reads `usage` from a whole OpenAI response body without parsing the rest.
    pub fn from_openai_body(body: &[u8]) -> Option<Self> {
        let span = find_top_level_value(body, "usage")?;
        Self::from_usage_json(span.slice(body)?)
    }
}

#[cfg(test)]
// `allow-indexing-slicing-in-tests` does not cover string_slice.
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ChatRequestView, RequestBodyError> {
        JsonScratch::new().parse(Endpoint::ChatCompletions, body.as_bytes())
    }

    #[test]
    fn reads_model_and_stream() {
        let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
        let v = parse(body).unwrap();
        assert_eq!(v.model, "gpt-4o-mini");
        assert!(v.stream && v.include_usage);
        assert_eq!(
            &body[v.model_span.start..v.model_span.end],
            "\"gpt-4o-mini\""
        );
    }

    #[test]
    fn max_output_tokens_are_read_and_set_per_endpoint() {
        let v = parse(r#"{"model":"m","messages":[],"max_tokens":50,"max_completion_tokens":80}"#);
        assert_eq!(v.unwrap().max_output_tokens, Some(80));
        assert_eq!(
            parse(r#"{"model":"m","messages":[]}"#)
                .unwrap()
                .max_output_tokens,
            None
        );
        let set = |e, body: &str, n| -> serde_json::Value {
            serde_json::from_slice(&with_max_output_tokens(e, body.as_bytes(), n).unwrap()).unwrap()
        };
        let chat = set(
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[]}"#,
            7,
        );
        assert_eq!(chat["max_tokens"], 7);
        let both = set(
            Endpoint::ChatCompletions,
            r#"{"model":"m","max_tokens":50,"max_completion_tokens":80}"#,
            7,
        );
        assert_eq!(
            (
                both["max_tokens"].clone(),
                both["max_completion_tokens"].clone()
            ),
            (7.into(), 7.into())
        );
        let responses = set(Endpoint::Responses, r#"{"model":"m","input":"x"}"#, 9);
        assert_eq!(responses["max_output_tokens"], 9);
        assert_eq!(responses["input"], "x");
        assert!(with_max_output_tokens(Endpoint::Embeddings, b"{}", 1).is_none());
        let messages = JsonScratch::new()
            .parse(
                Endpoint::Messages,
                br#"{"model":"m","max_tokens":64,"messages":[]}"#,
            )
            .unwrap();
        assert_eq!(messages.max_output_tokens, Some(64));
    }

    #[test]
    fn scratch_is_reusable() {
        let mut s = JsonScratch::new();
        for i in 0..3 {
            let body = format!(r#"{{"model":"m{i}","messages":[]}}"#);
            assert_eq!(
                s.parse(Endpoint::ChatCompletions, body.as_bytes())
                    .unwrap()
                    .model,
                format!("m{i}")
            );
        }
    }

    #[test]
    fn refuses_bad_bodies() {
        assert!(matches!(
            parse("{nope"),
            Err(RequestBodyError::InvalidJson(_))
        ));
        assert_eq!(parse("[]"), Err(RequestBodyError::NotAnObject));
        assert_eq!(
            parse(r#"{"messages":[]}"#),
            Err(RequestBodyError::Missing("model"))
        );
        assert_eq!(
            parse(r#"{"model":7,"messages":[]}"#),
            Err(RequestBodyError::WrongType {
                field: "model",
                expected: "a string"
            })
        );
        assert_eq!(
            parse(r#"{"model":"m","messages":[],"stream":"yes"}"#),
            Err(RequestBodyError::WrongType {
                field: "stream",
                expected: "a boolean"
            })
        );
        assert_eq!(
            parse(r#"{"model":"m","messages":{}}"#),
            Err(RequestBodyError::WrongType {
                field: "messages",
                expected: "an array"
            })
        );
    }

    #[test]
    fn duplicate_top_level_keys_are_refused_in_any_spelling() {
        for body in [
            r#"{"model":"m","model":"gpt-4-attacker-choice","messages":[]}"#,
            r#"{"model":"m","mod\u0065l":"gpt-4-attacker-choice","messages":[]}"#,
            r#"{"model":"m","messages":[],"messages":[]}"#,
        ] {
            assert!(
                matches!(parse(body), Err(RequestBodyError::DuplicateKey(_))),
                "{body}"
            );
        }
        // Many keys (past the small inline set) still find the duplicate.
        let mut body = String::from(r#"{"model":"m","messages":[]"#);
        for i in 0..40 {
            body.push_str(&format!(r#","k{i}":1"#));
        }
        body.push_str(r#","k33":2}"#);
        assert_eq!(
            parse(&body),
            Err(RequestBodyError::DuplicateKey("k33".into()))
        );
        // The same key inside nested objects is fine.
        assert!(parse(r#"{"model":"m","messages":[{"model":1}],"x":{"model":2}}"#).is_ok());
    }

    #[test]
    fn an_escaped_model_key_is_found_for_the_splice() {
        let body = r#"{"mod\u0065l":"m","messages":[]}"#;
        let v = parse(body).unwrap();
        assert_eq!(v.model, "m");
        assert_eq!(&body[v.model_span.start..v.model_span.end], "\"m\"");
    }

    #[test]
    fn usage_from_body() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"usage"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
        assert_eq!(
            Usage::from_openai_body(body),
            Some(Usage {
                input_tokens: 12,
                output_tokens: 5,
                ..Usage::default()
            })
        );
        // Cached tokens are part of OpenAI's prompt_tokens; Anthropic counts them apart.
        let openai = br#"{"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}"#;
        let u = Usage::from_usage_json(openai).unwrap();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.prompt_tokens()),
            (8, 4, 12)
        );
        let anthropic = br#"{"input_tokens":3,"cache_read_input_tokens":4,"cache_creation_input_tokens":5,"output_tokens":2}"#;
        assert_eq!(
            Usage::from_usage_json(anthropic).unwrap().prompt_tokens(),
            12
        );
    }
}
