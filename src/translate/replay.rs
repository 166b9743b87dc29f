//! A whole answer sent as the stream the client asked for, in its own dialect: a cached
//! Chat completion, or an answer the gateway had to see whole before sending it
//! (`buffer_stream`). Each event sequence follows the provider's published stream format,
//! so SDKs read it as they read a live stream.

use serde_json::{json, Value};

use super::{replay_chat_completion, write_event};
use crate::wire::WireApi;

/// The SSE stream for a whole answer body in `client`'s dialect; `None` when the body is
/// not an answer of that dialect.
pub fn replay_as_stream(client: WireApi, body: &[u8], include_usage: bool) -> Option<Vec<u8>> {
    match client {
        WireApi::Messages => replay_message(body),
        WireApi::Responses => replay_response(body),
        _ => replay_chat_completion(body, include_usage),
    }
}

/// Writes one named SSE event.
fn push(out: &mut Vec<u8>, name: &str, data: &Value) {
    write_event(out, Some(name.as_bytes()), data.to_string().as_bytes());
}

/// An Anthropic `message` as `message_start`, each block's start, one delta and stop,
/// `message_delta` (stop reason, output tokens) and `message_stop`.
pub fn replay_message(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let blocks = v.get("content")?.as_array()?;
    let mut out = Vec::with_capacity(body.len() * 2 + 512);
    let mut start = v.clone();
    let usage = v.get("usage").cloned().unwrap_or(json!({}));
    if let Some(o) = start.as_object_mut() {
        o.insert("content".into(), json!([]));
        o.insert("stop_reason".into(), Value::Null);
        o.insert("stop_sequence".into(), Value::Null);
        let mut first = usage.clone();
        if let Some(u) = first.as_object_mut() {
            u.insert("output_tokens".into(), json!(1));
        }
        o.insert("usage".into(), first);
    }
    push(
        &mut out,
        "message_start",
        &json!({"type": "message_start", "message": start}),
    );
    for (index, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let (empty, delta) = match kind {
            "text" => (
                json!({"type": "text", "text": ""}),
                Some(
                    json!({"type": "text_delta", "text": block.get("text").cloned().unwrap_or(json!(""))}),
                ),
            ),
            "tool_use" | "server_tool_use" => {
                let mut empty = block.clone();
                if let Some(o) = empty.as_object_mut() {
                    o.insert("input".into(), json!({}));
                }
                let input = block.get("input").cloned().unwrap_or(json!({}));
                (
                    empty,
                    Some(json!({"type": "input_json_delta", "partial_json": input.to_string()})),
                )
            }
            "thinking" => (
                json!({"type": "thinking", "thinking": ""}),
                Some(
                    json!({"type": "thinking_delta", "thinking": block.get("thinking").cloned().unwrap_or(json!(""))}),
                ),
            ),
            _ => (block.clone(), None),
        };
        push(
            &mut out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": empty}),
        );
        if let Some(delta) = delta {
            push(
                &mut out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        if let Some(sig) = block.get("signature").filter(|_| kind == "thinking") {
            push(
                &mut out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": sig}}),
            );
        }
        push(
            &mut out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    let delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": v.get("stop_reason").cloned().unwrap_or(Value::Null),
                  "stop_sequence": v.get("stop_sequence").cloned().unwrap_or(Value::Null)},
        "usage": {"output_tokens": usage.get("output_tokens").cloned().unwrap_or(json!(0))},
    });
    push(&mut out, "message_delta", &delta);
    push(&mut out, "message_stop", &json!({"type": "message_stop"}));
    Some(out)
}

/// A Responses `response` as `response.created`, `response.in_progress`, each output
/// item's added/delta/done events, and `response.completed`, numbered in order.
pub fn replay_response(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let items = v.get("output")?.as_array()?;
    let mut out = Vec::with_capacity(body.len() * 3 + 1024);
    let mut seq = 0u64;
    let mut emit = |out: &mut Vec<u8>, mut event: Value| {
        let name = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(o) = event.as_object_mut() {
            o.insert("sequence_number".into(), json!(seq));
        }
        seq += 1;
        push(out, &name, &event);
    };
    let mut pending = v.clone();
    if let Some(o) = pending.as_object_mut() {
        o.insert("status".into(), json!("in_progress"));
        o.insert("output".into(), json!([]));
        o.insert("usage".into(), Value::Null);
    }
    emit(
        &mut out,
        json!({"type": "response.created", "response": pending}),
    );
    emit(
        &mut out,
        json!({"type": "response.in_progress", "response": pending}),
    );
    for (i, item) in items.iter().enumerate() {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let mut added = item.clone();
        if let Some(o) = added.as_object_mut() {
            o.insert("status".into(), json!("in_progress"));
            match kind {
                "message" => {
                    o.insert("content".into(), json!([]));
                }
                "function_call" => {
                    o.insert("arguments".into(), json!(""));
                }
                _ => {}
            }
        }
        emit(
            &mut out,
            json!({"type": "response.output_item.added", "output_index": i, "item": added}),
        );
        if kind == "message" {
            let parts = item.get("content").and_then(Value::as_array);
            for (j, part) in parts.into_iter().flatten().enumerate() {
                let at = json!({"item_id": id, "output_index": i, "content_index": j});
                let with = |mut e: Value, extra: Value| {
                    if let (Some(o), Some(x), Some(a)) =
                        (e.as_object_mut(), extra.as_object(), at.as_object())
                    {
                        o.extend(a.clone());
                        o.extend(x.clone());
                    }
                    e
                };
                let ptype = part.get("type").and_then(Value::as_str).unwrap_or("");
                let mut empty = part.clone();
                if let Some(o) = empty.as_object_mut() {
                    if ptype == "output_text" {
                        o.insert("text".into(), json!(""));
                    }
                }
                emit(
                    &mut out,
                    with(
                        json!({"type": "response.content_part.added"}),
                        json!({"part": empty}),
                    ),
                );
                if ptype == "output_text" {
                    let text = part.get("text").cloned().unwrap_or(json!(""));
                    emit(
                        &mut out,
                        with(
                            json!({"type": "response.output_text.delta"}),
                            json!({"delta": text, "logprobs": []}),
                        ),
                    );
                    emit(
                        &mut out,
                        with(
                            json!({"type": "response.output_text.done"}),
                            json!({"text": text, "logprobs": []}),
                        ),
                    );
                }
                emit(
                    &mut out,
                    with(
                        json!({"type": "response.content_part.done"}),
                        json!({"part": part}),
                    ),
                );
            }
        } else if kind == "function_call" {
            let args = item.get("arguments").cloned().unwrap_or(json!(""));
            emit(
                &mut out,
                json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": i, "delta": args}),
            );
            emit(
                &mut out,
                json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": i, "arguments": args}),
            );
        }
        emit(
            &mut out,
            json!({"type": "response.output_item.done", "output_index": i, "item": item}),
        );
    }
    let end = match v.get("status").and_then(Value::as_str) {
        Some("incomplete") => "response.incomplete",
        Some("failed") => "response.failed",
        _ => "response.completed",
    };
    emit(&mut out, json!({"type": end, "response": v}));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::for_each_event;

    fn events(sse: &[u8]) -> Vec<(String, Value)> {
        let mut scratch = Vec::new();
        let mut all = Vec::new();
        for_each_event(sse, &mut scratch, |name, data| {
            let name = name
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            let v = serde_json::from_slice(data).unwrap_or(Value::Null);
            all.push((name, v));
            Ok(())
        })
        .unwrap();
        all
    }

    #[test]
    fn a_message_replays_as_anthropic_events() {
        let m = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "{\"a\":1}"},
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}}],
            "stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 7}});
        let sse = replay_message(m.to_string().as_bytes()).unwrap();
        let all = events(&sse);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(all[0].1["message"]["usage"]["input_tokens"], 5);
        assert_eq!(all[2].1["delta"]["text"], "{\"a\":1}");
        assert_eq!(all[5].1["delta"]["partial_json"], "{\"x\":1}");
        assert_eq!(all[7].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(all[7].1["usage"]["output_tokens"], 7);
    }

    #[test]
    fn a_response_replays_as_numbered_responses_events() {
        let r = json!({"id": "resp_1", "object": "response", "status": "completed", "model": "m",
            "output": [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "{\"a\":1}", "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}});
        let sse = replay_response(r.to_string().as_bytes()).unwrap();
        let all = events(&sse);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (_, e)) in all.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
        }
        assert_eq!(all[4].1["delta"], "{\"a\":1}");
        assert_eq!(all[4].1["item_id"], "msg_1");
        assert_eq!(all[8].1["response"]["usage"]["total_tokens"], 7);
    }

    #[test]
    fn a_chat_completion_with_tool_calls_replays_whole() {
        let c = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
             "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}});
        let sse = replay_as_stream(WireApi::Chat, c.to_string().as_bytes(), true).unwrap();
        let text = String::from_utf8(sse).unwrap();
        assert!(text.contains("\"tool_calls\":[{"), "{text}");
        assert!(text.contains("\"finish_reason\":\"tool_calls\""));
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
}
