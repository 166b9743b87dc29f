//! The request every worker sends: built once, sent as shared `Bytes`.

use bytes::Bytes;

use super::config::LoadgenConfig;

const PROMPT: &str = "Summarize the following text in one sentence.";

/// A chat completions body for `model`, padded to about `body_bytes` bytes.
pub fn chat_body(model: &str, stream: bool, body_bytes: usize) -> Vec<u8> {
    let render = |prompt: &str| {
        let mut body = serde_json::json!({
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": prompt},
            ],
        });
        if stream {
            body["stream"] = serde_json::Value::Bool(true);
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        body.to_string().into_bytes()
    };
    let body = render(PROMPT);
    if body.len() >= body_bytes {
        return body;
    }
    // Pad with plain words (no escaping), so the final size is exact.
    let pad: String = " lorem ipsum dolor sit amet"
        .chars()
        .cycle()
        .take(body_bytes - body.len())
        .collect();
    render(&format!("{PROMPT}{pad}"))
}

/// The full HTTP/1.1 request (head and body) for `config`.
pub(crate) fn build_request(config: &LoadgenConfig) -> Bytes {
    let body = match &config.body {
        Some(body) => body.clone(),
        None => chat_body(&config.model, config.stream, config.body_bytes),
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        config.target.path,
        config.target.host,
        body.len()
    );
    if config.stream {
        head.push_str("accept: text/event-stream\r\n");
    }
    for (name, value) in &config.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pads_body_to_exact_size() {
        let body = chat_body("gpt-4o-mini", true, 1024);
        assert_eq!(body.len(), 1024);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["stream"], true);
        assert!(chat_body("m", false, 0).len() < 200);
    }
}
