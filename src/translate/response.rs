//! Whole (non-streamed) responses and error bodies from one dialect to the other. The client's
//! requested model alias goes into `model`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::anthropic_types as an;
use super::openai_types as oa;
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

/// Translates an Anthropic `message` response into an OpenAI `chat.completion` for a client
/// that asked for `client_model`. Text blocks are joined into `content`, `tool_use` blocks
/// become `tool_calls`, `thinking` blocks become `reasoning_content` (the field
/// OpenAI-compatible servers use; OpenAI itself returns no reasoning text).
pub fn anthropic_to_openai_response(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let msg: an::MessageResponse = serde_json::from_slice(body)
        .map_err(|e| TranslateError::invalid("Anthropic response", e))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for b in msg.content {
        match b.kind.as_str() {
            "text" => text
                .get_or_insert_with(String::new)
                .push_str(b.text.as_deref().unwrap_or_default()),
            "thinking" => reasoning
                .get_or_insert_with(String::new)
                .push_str(b.thinking.as_deref().unwrap_or_default()),
            "tool_use" => {
                let arguments =
                    serde_json::to_string(&b.input.unwrap_or(Value::Object(Default::default())))
                        .map_err(|e| TranslateError::invalid("Anthropic response", e))?;
                calls.push(oa::ToolCall {
                    id: b.id.unwrap_or_default(),
                    kind: "function".into(),
                    function: oa::FunctionCall {
                        name: b.name.unwrap_or_default(),
                        arguments,
                    },
                });
            }
            // Redacted thinking is encrypted and means nothing to an OpenAI client.
            "redacted_thinking" => {}
            other => {
                return Err(TranslateError::unsupported(
                    format!("content[].type={other}"),
                    super::error::OPENAI,
                ))
            }
        }
    }
    let stop = msg.stop_reason.as_deref().map(FinishReason::from_anthropic);
    let out = oa::ChatCompletion {
        id: format!("chatcmpl-{}", msg.id),
        object: "chat.completion".into(),
        created: unix_now(),
        model: client_model.to_owned(),
        choices: vec![oa::Choice {
            index: 0,
            message: oa::ResponseMessage {
                role: "assistant".into(),
                content: text,
                refusal: None,
                tool_calls: if calls.is_empty() { None } else { Some(calls) },
                reasoning_content: reasoning,
            },
            logprobs: None,
            finish_reason: Some(stop.unwrap_or(FinishReason::EndTurn).openai().into()),
        }],
        usage: Some(Usage::from_anthropic(&msg.usage).to_openai()),
    };
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("OpenAI response", e))
}

/// Translates an OpenAI `chat.completion` (its first choice) into an Anthropic `message` for a
/// client that asked for `client_model`. `reasoning_content` (OpenAI-compatible servers)
/// becomes a `thinking` block with an empty signature; `refusal` becomes a text block.
pub fn openai_to_anthropic_response(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let resp: oa::ChatCompletion =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("OpenAI response", e))?;
    let choice = resp
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::invalid("OpenAI response", "no choices"))?;
    let m = choice.message;
    let mut content = Vec::new();
    if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
        content.push(an::Block {
            kind: "thinking".into(),
            thinking: Some(r),
            signature: Some(String::new()),
            ..an::Block::default()
        });
    }
    if let Some(t) = m.content.filter(|t| !t.is_empty()) {
        content.push(an::Block::text(t));
    }
    if let Some(r) = m.refusal.filter(|r| !r.is_empty()) {
        content.push(an::Block::text(r));
    }
    for call in m.tool_calls.unwrap_or_default() {
        let input: Value = serde_json::from_str(&call.function.arguments).map_err(|e| {
            TranslateError::invalid("OpenAI response", format!("tool call arguments: {e}"))
        })?;
        content.push(an::Block {
            kind: "tool_use".into(),
            id: Some(call.id),
            name: Some(call.function.name),
            input: Some(input),
            ..an::Block::default()
        });
    }
    let stop = choice
        .finish_reason
        .as_deref()
        .map(FinishReason::from_openai)
        .unwrap_or(FinishReason::EndTurn);
    let out = an::MessageResponse {
        id: format!("msg_{}", resp.id),
        kind: "message".into(),
        role: "assistant".into(),
        model: client_model.to_owned(),
        content,
        stop_reason: Some(stop.anthropic().into()),
        stop_sequence: None,
        usage: resp
            .usage
            .map(|u| Usage::from_openai(&u))
            .unwrap_or_default()
            .to_anthropic(),
    };
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("Anthropic response", e))
}

/// Maps an OpenAI error (status and body) into Anthropic's error shape and status. The type
/// follows the status: 400 `invalid_request_error`, 401 `authentication_error`, 403
/// `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`,
/// 503 and 529 `overloaded_error` (status 529), other 5xx `api_error`.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let message = match serde_json::from_slice::<oa::ErrorEnvelope>(body) {
        Ok(e) => e.error.message,
        Err(_) => raw_message(body),
    };
    let (status, kind) = match status {
        401 => (401, "authentication_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        s if s >= 500 => (s, "api_error"),
        s => (s, "invalid_request_error"),
    };
    (status, anthropic_error_body(kind, &message))
}

/// Maps an Anthropic error (status and body) into OpenAI's error shape and status.
/// `overloaded_error` (529) becomes 503 `server_error`, code `overloaded`; `api_error` becomes
/// `server_error`; the other types keep their name and status.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let (kind, message) = match serde_json::from_slice::<an::ErrorEnvelope>(body) {
        Ok(e) => (e.error.kind, e.error.message),
        Err(_) => (String::new(), raw_message(body)),
    };
    let (status, kind, code) = match (status, kind.as_str()) {
        (529, _) | (_, "overloaded_error") => (503, "server_error".to_owned(), Some("overloaded")),
        (s, "api_error") => (s, "server_error".to_owned(), None),
        (s, "") if s >= 500 => (s, "server_error".to_owned(), None),
        (s, "") => (s, "invalid_request_error".to_owned(), None),
        (s, k) => (s, k.to_owned(), None),
    };
    (status, openai_error_body(&kind, &message, code))
}

/// `{"type":"error","error":{"type":kind,"message":message}}`.
pub(crate) fn anthropic_error_body(kind: &str, message: &str) -> Vec<u8> {
    let e = an::ErrorEnvelope {
        kind: "error".into(),
        error: an::ErrorBody {
            kind: kind.into(),
            message: message.into(),
        },
    };
    serde_json::to_vec(&e).unwrap_or_default()
}

/// `{"error":{"message","type","param":null,"code"}}`.
pub(crate) fn openai_error_body(kind: &str, message: &str, code: Option<&str>) -> Vec<u8> {
    let e = oa::ErrorEnvelope {
        error: oa::ErrorBody {
            message: message.into(),
            kind: Some(kind.into()),
            param: Some(Value::Null),
            code: Some(code.map_or(Value::Null, |c| Value::String(c.into()))),
        },
    };
    serde_json::to_vec(&e).unwrap_or_default()
}

/// A body that is not the provider's error JSON, as a message (at most 1 KiB).
fn raw_message(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body.get(..1024).unwrap_or(body))
        .trim()
        .to_owned();
    if s.is_empty() {
        "upstream error".to_owned()
    } else {
        s
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn openai_errors_map_to_anthropic_types_and_statuses() {
        let body = br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        for (status, want_status, kind) in [
            (400, 400, "invalid_request_error"),
            (401, 401, "authentication_error"),
            (403, 403, "permission_error"),
            (404, 404, "not_found_error"),
            (413, 413, "request_too_large"),
            (429, 429, "rate_limit_error"),
            (500, 500, "api_error"),
            (503, 529, "overloaded_error"),
        ] {
            let (st, out) = openai_error_to_anthropic(status, body);
            assert_eq!(st, want_status);
            assert_eq!(
                v(&out),
                json!({"type": "error", "error": {"type": kind, "message": "bad key"}})
            );
        }
    }

    #[test]
    fn anthropic_errors_map_to_openai_shape() {
        let (st, out) = anthropic_error_to_openai(
            400,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
        );
        assert_eq!(st, 400);
        assert_eq!(
            v(&out),
            json!({"error": {"message": "max_tokens: Field required", "type": "invalid_request_error", "param": null, "code": null}})
        );
        let (st, out) = anthropic_error_to_openai(
            500,
            br#"{"type":"error","error":{"type":"api_error","message":"oops"}}"#,
        );
        assert_eq!(
            (st, v(&out)["error"]["type"].clone()),
            (500, json!("server_error"))
        );
    }

    #[test]
    fn non_json_error_bodies_keep_their_text() {
        let (st, out) = openai_error_to_anthropic(502, b"<html>Bad Gateway</html>");
        assert_eq!(st, 502);
        assert_eq!(
            v(&out)["error"],
            json!({"type": "api_error", "message": "<html>Bad Gateway</html>"})
        );
        let (_, out) = anthropic_error_to_openai(502, b"");
        assert_eq!(v(&out)["error"]["message"], "upstream error");
    }

    #[test]
    fn refusal_and_content_filter_map_both_ways() {
        let msg = br#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"I can't help with that."}],"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4}}"#;
        let out = v(&anthropic_to_openai_response(msg, "alias").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["model"], "alias");
        let chat = br#"{"id":"x","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't."},"logprobs":null,"finish_reason":"content_filter"}]}"#;
        let out = v(&openai_to_anthropic_response(chat, "alias").unwrap());
        assert_eq!(out["stop_reason"], "refusal");
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't."}])
        );
        assert_eq!(out["usage"]["input_tokens"], 0);
    }

    #[test]
    fn length_and_max_tokens_map_both_ways() {
        let chat = br#"{"id":"x","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":"abc"},"finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let out = v(&openai_to_anthropic_response(chat, "a").unwrap());
        assert_eq!(out["stop_reason"], "max_tokens");
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 6, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4})
        );
    }
}
