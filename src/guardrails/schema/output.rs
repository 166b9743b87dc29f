//! The texts of a whole answer that must match the schema, in the client's dialect: each
//! Chat choice's `message.content`, a Messages answer's text blocks, a Responses answer's
//! `output_text` parts. A turn that calls tools (or a refusal) has no output to check.

use serde_json::Value;

use crate::wire::WireApi;

/// One output to check, and where it sits (for the record and the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputText {
    /// Chat choice index, or 0.
    pub index: u64,
    /// The text.
    pub text: String,
}

/// The outputs of a whole answer body in `client`'s dialect. A body that is not an answer
/// (not JSON, no choices) yields an empty output to check, so it fails as not JSON.
pub fn output_texts(client: WireApi, body: &[u8]) -> Vec<OutputText> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return vec![OutputText {
            index: 0,
            text: String::new(),
        }];
    };
    outputs_of(client, &v)
}

/// The outputs of an answer already parsed.
pub fn outputs_of(client: WireApi, v: &Value) -> Vec<OutputText> {
    match client {
        WireApi::Messages => messages(v).into_iter().collect(),
        WireApi::Responses => responses(v).into_iter().collect(),
        _ => chat(v),
    }
}

fn chat(v: &Value) -> Vec<OutputText> {
    let choices = v.get("choices").and_then(Value::as_array);
    choices
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(pos, choice)| {
            let index = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            let message = choice.get("message")?;
            let calls_tools = choice.get("finish_reason").and_then(Value::as_str)
                == Some("tool_calls")
                || message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty());
            let refused = message.get("refusal").is_some_and(|r| !r.is_null());
            let text = message.get("content").and_then(Value::as_str);
            if (calls_tools || refused) && text.is_none_or(str::is_empty) {
                return None;
            }
            Some(OutputText {
                index,
                text: text.unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn messages(v: &Value) -> Option<OutputText> {
    let stop = v.get("stop_reason").and_then(Value::as_str);
    let blocks = v.get("content").and_then(Value::as_array);
    let mut text = String::new();
    let mut tool_use = false;
    for block in blocks.into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_use = true,
            _ => {}
        }
    }
    if text.is_empty() && (tool_use || matches!(stop, Some("tool_use" | "refusal"))) {
        return None;
    }
    Some(OutputText { index: 0, text })
}

fn responses(v: &Value) -> Option<OutputText> {
    let items = v.get("output").and_then(Value::as_array);
    let mut text = String::new();
    let mut other = false;
    for item in items.into_iter().flatten() {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let parts = item.get("content").and_then(Value::as_array);
                for part in parts.into_iter().flatten() {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""))
                        }
                        Some("refusal") => other = true,
                        _ => {}
                    }
                }
            }
            Some("function_call" | "custom_tool_call") => other = true,
            _ => {}
        }
    }
    if text.is_empty() && other {
        return None;
    }
    Some(OutputText { index: 0, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(client: WireApi, v: Value) -> Vec<String> {
        output_texts(client, v.to_string().as_bytes())
            .into_iter()
            .map(|o| o.text)
            .collect()
    }

    #[test]
    fn chat_choices_each_give_their_content() {
        let v = json!({"choices": [
            {"index": 0, "message": {"role": "assistant", "content": "{\"a\":1}"}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "no"}, "finish_reason": "stop"}]});
        assert_eq!(texts(WireApi::Chat, v), ["{\"a\":1}", "no"]);
    }

    #[test]
    fn tool_calls_and_refusals_are_not_outputs() {
        let calls = json!({"choices": [{"index": 0, "message": {"content": null,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]});
        assert!(texts(WireApi::Chat, calls).is_empty());
        let refusal = json!({"choices": [{"index": 0, "message": {"content": null, "refusal": "I can't."}, "finish_reason": "stop"}]});
        assert!(texts(WireApi::Chat, refusal).is_empty());
        let tool_use = json!({"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "stop_reason": "tool_use"});
        assert!(texts(WireApi::Messages, tool_use).is_empty());
        let call = json!({"output": [{"type": "function_call", "name": "f", "arguments": "{}"}]});
        assert!(texts(WireApi::Responses, call).is_empty());
    }

    #[test]
    fn messages_and_responses_join_their_text_parts() {
        let m = json!({"content": [{"type": "text", "text": "{\"a\":"}, {"type": "text", "text": "1}"}], "stop_reason": "end_turn"});
        assert_eq!(texts(WireApi::Messages, m), ["{\"a\":1}"]);
        let r = json!({"output": [{"type": "reasoning", "summary": []}, {"type": "message", "content": [
            {"type": "output_text", "text": "{\"a\":1}", "annotations": []}]}]});
        assert_eq!(texts(WireApi::Responses, r), ["{\"a\":1}"]);
    }

    #[test]
    fn an_empty_or_broken_answer_is_an_empty_output() {
        assert_eq!(
            texts(
                WireApi::Chat,
                json!({"choices": [{"message": {"content": null}}]})
            ),
            [""]
        );
        assert_eq!(output_texts(WireApi::Messages, b"not json")[0].text, "");
    }
}
