//! Between a streamed OpenAI chat completion and a whole one: `assemble_chat_completion`
//! rebuilds the final `chat.completion` from the stream's events (so a streamed answer can be
//! cached), and `replay_chat_completion` renders a cached completion as a well-formed stream.

use serde_json::{json, Map, Value};

/// Rebuilds a `chat.completion` from the SSE bytes of a complete stream. Returns `None` when
/// the stream is not a plain single-choice text answer (tool calls, several choices, no
/// `[DONE]`, an error event): such answers are not cached.
pub fn assemble_chat_completion(sse: &[u8]) -> Option<Vec<u8>> {
    let mut content = String::new();
    let mut first: Option<Map<String, Value>> = None;
    let mut finish: Option<Value> = None;
    let mut usage: Option<Value> = None;
    let mut done = false;
    for line in sse.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_slice(data).ok()?;
        let obj = v.as_object()?;
        if obj.contains_key("error") {
            return None;
        }
        if let Some(u) = obj.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        if first.is_none() {
            first = Some(obj.clone());
        }
        for choice in obj
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                return None;
            }
            let delta = choice.get("delta");
            if delta
                .and_then(|d| d.get("tool_calls"))
                .is_some_and(|t| !t.is_null())
                || delta
                    .and_then(|d| d.get("function_call"))
                    .is_some_and(|t| !t.is_null())
            {
                return None;
            }
            if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str) {
                content.push_str(text);
            }
            if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
                finish = Some(f.clone());
            }
        }
    }
    if !done {
        return None;
    }
    let first = first?;
    let mut out = json!({
        "id": first.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": first.get("created").cloned().unwrap_or(Value::Null),
        "model": first.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": finish?,
        }],
    });
    if let Some(fp) = first.get("system_fingerprint") {
        set(&mut out, "system_fingerprint", fp.clone());
    }
    if let Some(u) = usage {
        set(&mut out, "usage", u);
    }
    serde_json::to_vec(&out).ok()
}

/// `v[key] = value` for the JSON object `v` (built by `json!`), without the panic path of
/// `IndexMut`; a non-object `v` is left as it is.
fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(obj) = v.as_object_mut() {
        obj.insert(key.to_owned(), value);
    }
}

/// Renders a whole `chat.completion` as SSE: per choice a role chunk, its content, its
/// tool calls (each whole, in one chunk) and its finish chunk; a usage chunk when the
/// client asked for one; then `[DONE]`. `None` when the body is not a completion.
pub fn replay_chat_completion(completion: &[u8], include_usage: bool) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(completion).ok()?;
    let choices = v.get("choices")?.as_array()?;
    let base = |choices: Value| {
        let mut c = json!({
            "id": v.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": v.get("created").cloned().unwrap_or(Value::Null),
            "model": v.get("model").cloned().unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(fp) = v.get("system_fingerprint") {
            set(&mut c, "system_fingerprint", fp.clone());
        }
        c
    };
    let mut out = Vec::with_capacity(completion.len() * 2 + 512);
    let mut push = |event: Value| {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    };
    for (pos, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(pos));
        let message = choice.get("message")?;
        let delta = |d: Value| json!([{"index": index, "delta": d, "logprobs": null, "finish_reason": null}]);
        push(base(delta(json!({"role": "assistant", "content": ""}))));
        let content = message.get("content").and_then(Value::as_str).unwrap_or("");
        if !content.is_empty() {
            push(base(delta(json!({"content": content}))));
        }
        if let Some(refusal) = message.get("refusal").filter(|r| !r.is_null()) {
            push(base(delta(json!({"refusal": refusal}))));
        }
        let calls = message.get("tool_calls").and_then(Value::as_array);
        for (k, call) in calls.into_iter().flatten().enumerate() {
            let mut call = call.clone();
            set(&mut call, "index", json!(k));
            push(base(delta(json!({"tool_calls": [call]}))));
        }
        let finish = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(json!("stop"));
        push(base(
            json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]),
        ));
    }
    if include_usage {
        if let Some(u) = v.get("usage") {
            let mut c = base(json!([]));
            set(&mut c, "usage", u.clone());
            push(c);
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n"
    );

    #[test]
    fn assembles_and_replays_round_trip() {
        let whole = assemble_chat_completion(STREAM.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 5);
        assert_eq!(v["object"], "chat.completion");

        let replay = replay_chat_completion(&whole, true).unwrap();
        let again = assemble_chat_completion(&replay).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&again).unwrap(), v);
        let text = String::from_utf8(replay).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(text.matches("\n\n").count(), 5);
    }

    #[test]
    fn refuses_what_it_cannot_cache() {
        let cut = STREAM.replace("data: [DONE]\n\n", "");
        assert!(assemble_chat_completion(cut.as_bytes()).is_none());
        let tools = STREAM.replace("{\"content\":\"lo\"}", "{\"tool_calls\":[{\"index\":0}]}");
        assert!(assemble_chat_completion(tools.as_bytes()).is_none());
        let err = "data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n";
        assert!(assemble_chat_completion(err.as_bytes()).is_none());
    }
}
