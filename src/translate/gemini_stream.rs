//! [`GeminiToChatStream`]: a Gemini `streamGenerateContent?alt=sse` stream in, OpenAI
//! `chat.completion.chunk` events and `data: [DONE]` out.

use super::write::json_str;
use std::io::Write;

use super::gemini::{chat_id, chat_usage, read_part, ReadPart};
use super::gemini_types as gm;
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

/// Translates a Gemini stream into an OpenAI Chat Completions stream.
///
/// Each upstream `data:` payload is a whole `GenerateContentResponse`; Gemini sends no event
/// names and no end marker, so the stream ends when the body does and the caller must call
/// [`finish`](Self::finish). The first event gives the chunk with `delta.role`; text parts give
/// `content` deltas, thought parts `reasoning_content` deltas; each `functionCall` part (Gemini
/// sends a call whole) gives one `tool_calls` delta with the next `index`, its `id` (Gemini's,
/// or a generated `call_…`), `type`, `name` and the whole `arguments`. `finishReason` and
/// `usageMetadata` (cumulative, complete on the last event) are kept; `finish` then writes the
/// chunk with `finish_reason`, the usage chunk (when the client asked `include_usage`) and
/// `data: [DONE]`, or, when no finish reason came, an error chunk and `data: [DONE]`. A Gemini
/// `{"error":…}` event becomes an OpenAI error chunk and `data: [DONE]`.
#[derive(Debug)]
pub struct GeminiToChatStream {
    model: String,
    include_usage: bool,
    /// `data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,` built at the first event.
    head: Vec<u8>,
    next_tool: u32,
    finished: bool,
    stop: Option<FinishReason>,
    usage: Option<gm::UsageMetadata>,
    /// Output feeds another translator (see [`Self::for_hub`]).
    hub: bool,
}

impl GeminiToChatStream {
    /// A translator for a client that asked for `client_model`; `include_usage` is the client's
    /// `stream_options.include_usage` (see `openai_include_usage`).
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            model: client_model.to_owned(),
            include_usage,
            head: Vec::new(),
            next_tool: 0,
            finished: false,
            stop: None,
            usage: None,
            hub: false,
        }
    }

    /// For a stream that feeds another translator rather than a client (the Chat hub of a
    /// two-leg pair): chunks leave out `object`, `model` and `logprobs`, which no translator
    /// reads, so they are cheaper to write and to parse again.
    pub fn for_hub(mut self) -> Self {
        self.hub = true;
        self
    }

    /// Usage as reported so far (each Gemini event carries the running totals).
    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(Usage::from_gemini)
    }

    /// The stop reason, once `finishReason` (or a blocked prompt) came; `ToolUse` when the
    /// answer called functions.
    pub fn stop_reason(&self) -> Option<FinishReason> {
        self.stop.map(|s| self.with_tools(s))
    }

    fn with_tools(&self, s: FinishReason) -> FinishReason {
        if s == FinishReason::EndTurn && self.next_tool > 0 {
            FinishReason::ToolUse
        } else {
            s
        }
    }

    /// Translates one upstream event (`data` is the `data:` payload; the name is unused,
    /// Gemini sends none), appending OpenAI SSE text to `out`.
    pub fn push_event(
        &mut self,
        _event_name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        let data = data.trim_ascii();
        if self.finished || data.is_empty() {
            return Ok(());
        }
        let ev: gm::GenerateContentResponse<'_> =
            super::sse::parse_event(data, "Gemini stream event")?;
        if let Some(e) = ev.error {
            let status = if e.code == 0 { 500 } else { e.code };
            let (_, body) = super::gemini::gemini_error_to_openai(status, data);
            self.error(out, &body);
            return Ok(());
        }
        if self.head.is_empty() {
            self.build_head(ev.response_id.as_deref());
            self.chunk(out, b"{\"role\":\"assistant\",\"content\":\"\"}", None);
        }
        if let Some(u) = ev.usage_metadata {
            self.usage = Some(u);
        }
        if ev.candidates.is_empty()
            && ev
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.stop = Some(FinishReason::Refusal);
        }
        let Some(c) = ev.candidates.into_iter().next() else {
            return Ok(());
        };
        for part in c.content.map(|c| c.parts).unwrap_or_default() {
            match read_part(part)? {
                ReadPart::Text(t) => self.text_chunk(out, b"content", &t),
                ReadPart::Thought(t) => self.text_chunk(out, b"reasoning_content", &t),
                ReadPart::Call(call) => {
                    let index = self.next_tool;
                    self.next_tool += 1;
                    let mut d = Vec::with_capacity(96 + call.arguments.len());
                    d.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    let _ = write!(d, "{index}");
                    d.extend_from_slice(b",\"id\":");
                    json_str(&mut d, &call.id);
                    d.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                    json_str(&mut d, &call.name);
                    d.extend_from_slice(b",\"arguments\":");
                    json_str(&mut d, &call.arguments);
                    d.extend_from_slice(b"}}]}");
                    self.chunk(out, &d, None);
                }
                ReadPart::Nothing => {}
            }
        }
        if let Some(r) = c.finish_reason.as_deref() {
            self.stop = Some(FinishReason::from_gemini(r));
        }
        Ok(())
    }

    /// Ends the client stream at the end of the upstream body: the `finish_reason` chunk, the
    /// usage chunk when asked and `data: [DONE]` when a finish reason came; else an error chunk
    /// and `data: [DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        let Some(stop) = self.stop_reason() else {
            let body = super::response::openai_error_body(
                "server_error",
                "upstream stream ended before completion",
                None,
            );
            self.error(out, &body);
            return;
        };
        self.finished = true;
        if self.head.is_empty() {
            self.build_head(None);
        }
        self.chunk(out, b"{}", Some(stop.openai()));
        if self.include_usage {
            out.extend_from_slice(&self.head);
            out.extend_from_slice(b"\"choices\":[],\"usage\":");
            let usage = chat_usage(&self.usage.unwrap_or_default());
            let _ = serde_json::to_writer(&mut *out, &usage);
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// `data: <OpenAI error body>` then `data: [DONE]`; nothing after.
    fn error(&mut self, out: &mut Vec<u8>, body: &[u8]) {
        self.finished = true;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(body);
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    }

    fn build_head(&mut self, response_id: Option<&str>) {
        self.head.clear();
        self.head.extend_from_slice(b"data: {\"id\":");
        json_str(&mut self.head, &chat_id(response_id));
        if self.hub {
            self.head.extend_from_slice(b",\"created\":");
            let _ = write!(self.head, "{}", super::response::unix_now());
            self.head.push(b',');
            return;
        }
        self.head
            .extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        let _ = write!(self.head, "{}", super::response::unix_now());
        self.head.extend_from_slice(b",\"model\":");
        json_str(&mut self.head, &self.model);
        self.head.push(b',');
    }

    /// One chunk whose single choice has `delta` (JSON) and `finish_reason`.
    fn chunk(&self, out: &mut Vec<u8>, delta: &[u8], finish: Option<&str>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":");
        out.extend_from_slice(delta);
        out.extend_from_slice(if self.hub {
            b",\"finish_reason\":"
        } else {
            b",\"logprobs\":null,\"finish_reason\":"
        });
        match finish {
            Some(f) => json_str(out, f),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
    }

    /// A chunk whose delta is `{"<key>": text}`, written straight into `out`.
    fn text_chunk(&self, out: &mut Vec<u8>, key: &[u8], text: &str) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":{\"");
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        json_str(out, text);
        out.extend_from_slice(if self.hub {
            b"},\"finish_reason\":null}]}\n\n"
        } else {
            b"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Client SSE text → the `data:` payloads (JSON, or the string `[DONE]`).
    fn events(out: &[u8]) -> Vec<Value> {
        let s = std::str::from_utf8(out).unwrap();
        assert!(s.ends_with("\n\n"), "every event is complete: {s}");
        s.split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let d = b.strip_prefix("data: ").unwrap();
                assert!(!d.contains('\n'), "one data line per event");
                serde_json::from_str(d).unwrap_or_else(|_| json!(d))
            })
            .collect()
    }

    fn run(s: &mut GeminiToChatStream, evs: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in evs {
            s.push_event(None, &serde_json::to_vec(e).unwrap(), &mut out)
                .unwrap();
        }
        s.finish(&mut out);
        out
    }

    fn text_ev(text: &str, finish: Option<&str>, candidates: u64) -> Value {
        let mut c = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if let Some(f) = finish {
            c["finishReason"] = json!(f);
        }
        json!({"candidates": [c], "usageMetadata": {"promptTokenCount": 5,
            "candidatesTokenCount": candidates, "totalTokenCount": 5 + candidates},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"})
    }

    #[test]
    fn text_stream_gives_role_deltas_finish_usage_and_done() {
        let mut s = GeminiToChatStream::new("alias", true);
        let out = run(
            &mut s,
            &[text_ev("Hel", None, 1), text_ev("lo", Some("STOP"), 2)],
        );
        let evs = events(&out);
        assert_eq!(evs.len(), 6);
        for e in &evs[..5] {
            assert_eq!(e["id"], "chatcmpl-r1");
            assert_eq!(e["object"], "chat.completion.chunk");
            assert_eq!(e["model"], "alias");
        }
        assert_eq!(
            evs[0]["choices"][0],
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})
        );
        assert_eq!(evs[1]["choices"][0]["delta"], json!({"content": "Hel"}));
        assert_eq!(evs[2]["choices"][0]["delta"], json!({"content": "lo"}));
        assert_eq!(
            evs[3]["choices"][0],
            json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
        );
        assert_eq!(evs[4]["choices"], json!([]));
        assert_eq!(
            evs[4]["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}})
        );
        assert_eq!(evs[5], json!("[DONE]"));
        assert_eq!(s.stop_reason(), Some(FinishReason::EndTurn));
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 5,
                output_tokens: 2,
                cache_read_tokens: 0,
                cache_creation_tokens: 0
            })
        );
        let mut more = Vec::new();
        s.push_event(None, b"{}", &mut more).unwrap();
        s.finish(&mut more);
        assert!(more.is_empty(), "nothing after the end");
    }

    #[test]
    fn parallel_function_calls_get_successive_indexes() {
        let mut s = GeminiToChatStream::new("alias", false);
        let out = run(
            &mut s,
            &[
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Checking", "thought": true},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]}}],
                    "responseId": "r2"}),
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"id": "fc_b", "name": "get_weather", "args": {"city": "Tokyo"}}}]},
                    "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 12, "thoughtsTokenCount": 3}}),
            ],
        );
        let evs = events(&out);
        assert_eq!(evs.len(), 6, "role, thought, call, call, finish, done");
        assert_eq!(
            evs[1]["choices"][0]["delta"],
            json!({"reasoning_content": "Checking"})
        );
        let c0 = &evs[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(c0["index"], 0);
        assert!(c0["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(c0["type"], "function");
        assert_eq!(
            c0["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        let c1 = &evs[3]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (c1["index"].clone(), c1["id"].clone()),
            (json!(1), json!("fc_b"))
        );
        assert_eq!(evs[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(evs[5], json!("[DONE]"));
        assert_eq!(s.stop_reason(), Some(FinishReason::ToolUse));
        assert_eq!(s.usage().unwrap().output_tokens, 15);
    }

    #[test]
    fn stream_cut_short_ends_with_an_error_chunk_then_done() {
        let mut s = GeminiToChatStream::new("alias", true);
        let out = run(&mut s, &[text_ev("par", None, 1)]);
        let evs = events(&out);
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[1]["choices"][0]["delta"]["content"], "par");
        assert_eq!(
            evs[2],
            json!({"error": {"message": "upstream stream ended before completion",
                "type": "server_error", "param": null, "code": null}})
        );
        assert_eq!(evs[3], json!("[DONE]"));
        assert_eq!(s.stop_reason(), None);
        // An empty body: only the error and [DONE].
        let mut s = GeminiToChatStream::new("alias", false);
        let evs = events(&run(&mut s, &[]));
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0]["error"]["type"], "server_error");
    }

    #[test]
    fn error_event_mid_stream_becomes_openai_error_and_done() {
        let mut s = GeminiToChatStream::new("alias", true);
        let out = run(
            &mut s,
            &[
                text_ev("a", None, 1),
                json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
                text_ev("b", Some("STOP"), 2),
            ],
        );
        let evs = events(&out);
        assert_eq!(evs.len(), 4);
        assert_eq!(
            evs[2],
            json!({"error": {"message": "The model is overloaded.", "type": "server_error",
                "param": null, "code": "unavailable"}})
        );
        assert_eq!(evs[3], json!("[DONE]"));
    }

    #[test]
    fn blocked_prompt_and_max_tokens_set_the_finish_reason() {
        let mut s = GeminiToChatStream::new("alias", false);
        let evs = events(&run(
            &mut s,
            &[
                json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 4}}),
            ],
        ));
        assert_eq!(evs[1]["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(evs[2], json!("[DONE]"));
        let mut s = GeminiToChatStream::new("alias", false);
        let evs = events(&run(&mut s, &[text_ev("x", Some("MAX_TOKENS"), 1)]));
        assert_eq!(evs[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(s.stop_reason(), Some(FinishReason::MaxTokens));
    }

    #[test]
    fn bad_events_are_errors_not_panics() {
        let mut s = GeminiToChatStream::new("alias", false);
        let mut out = Vec::new();
        assert!(matches!(
            s.push_event(None, b"{not json", &mut out),
            Err(TranslateError::Invalid { .. })
        ));
        assert!(matches!(
            s.push_event(
                None,
                br#"{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"AA=="}}]}}]}"#,
                &mut out
            ),
            Err(TranslateError::Unsupported { .. })
        ));
        // Blank keep-alive payloads are ignored.
        let before = out.len();
        s.push_event(None, b"  \r\n", &mut out).unwrap();
        assert_eq!(out.len(), before);
    }
}
