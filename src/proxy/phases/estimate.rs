//! `count_tokens` answered by the gateway when the target cannot count: Anthropic's SDKs
//! call it before long requests, and an estimate (about four characters a token) beats a 404.

use bytes::Bytes;

use super::super::outcome::{Outcome, Response};
use super::super::session::{ClientRequest, Session};

/// The estimate as a Messages `count_tokens` answer.
pub fn answer(s: &mut Session<'_>, request: &ClientRequest) -> Outcome {
    let tokens = estimate_tokens(&request.body);
    s.record.tokens_in = Some(tokens);
    let body = Bytes::from(format!("{{\"input_tokens\":{tokens}}}"));
    let head = s
        .response_head(200)
        .header("content-type", b"application/json")
        .header("x-infergate-estimate", b"true");
    Outcome::Respond(Box::new(Response::full(200, head, body)))
}

/// About four characters a token over the messages, the system prompt and the tools.
fn estimate_tokens(body: &[u8]) -> u64 {
    fn text_len(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.chars().count(),
            serde_json::Value::Array(a) => a.iter().map(text_len).sum(),
            serde_json::Value::Object(o) => o
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "type" | "role" | "id" | "cache_control"))
                .map(|(_, v)| text_len(v))
                .sum(),
            _ => 0,
        }
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |k: &str| v.get(k).map_or(0, text_len);
    let chars = field("messages") + field("system") + field("tools");
    chars.div_ceil(4).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_text_not_structure() {
        let body =
            br#"{"model":"m","system":"abcd","messages":[{"role":"user","content":"abcdefgh"}]}"#;
        assert_eq!(estimate_tokens(body), 3);
        assert_eq!(estimate_tokens(b"{}"), 1);
    }
}
