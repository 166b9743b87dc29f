//! [`ConverseToChatStream`]: a Bedrock `converse-stream` (event-stream frames, decoded by
//! [`super::eventstream::decode_frame`]) translated event by event into an OpenAI Chat
//! Completions SSE stream.

use super::write::json_str;
use std::io::Write;

use super::bedrock::{error_mapping, new_completion_id};
use super::bedrock_types as br;
use super::eventstream::EventFrame;
use super::response::{openai_error_body, unix_now};
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

/// What a frame is: an event (by `:event-type`), an exception (`:exception-type`, JSON
/// payload `{"message"}`) or an error (`:error-code`, message in `:error-message`).
enum Kind<'a> {
    Event(&'a [u8]),
    Exception(&'a str),
    Error(&'a str),
}

/// Translates a Bedrock Converse stream into an OpenAI Chat Completions stream.
///
/// Events in (`push_event`'s `name`, the frame's `:event-type`): `messageStart` gives the
/// role chunk; `contentBlockDelta` text gives `content` deltas, `reasoningContent.text`
/// `reasoning_content` deltas (signatures and redacted reasoning are dropped: an OpenAI client
/// cannot use them); `contentBlockStart.start.toolUse` opens a tool call with its own OpenAI
/// `index` (0, 1, …), `id` and `name`, and its `contentBlockDelta.delta.toolUse.input`
/// fragments become `arguments` fragments; `messageStop` gives the chunk with
/// `finish_reason`; `metadata` (which Bedrock sends after `messageStop`) gives the usage chunk
/// when the client asked `include_usage`, then `data: [DONE]`. Unknown event types are
/// skipped (Converse adds members over time).
///
/// Exceptions: a frame with `:message-type: exception` is passed with `name` =
/// `exception:<:exception-type>` (e.g. `exception:throttlingException`) and its JSON payload;
/// one with `:message-type: error` as `error:<:error-code>` with the `:error-message` text as
/// `data`. Either becomes an OpenAI error chunk (`data: {"error":{..}}`, typed as
/// [`super::bedrock_error_to_openai`] types it) and `data: [DONE]`. [`Self::push_frame`]
/// does this dispatch from a decoded frame.
#[derive(Debug)]
pub struct ConverseToChatStream {
    include_usage: bool,
    /// `data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,`.
    head: Vec<u8>,
    /// OpenAI tool index per Converse `contentBlockIndex` (`u32::MAX`: not a tool block).
    tool_index: Vec<u32>,
    next_tool: u32,
    started: bool,
    finished: bool,
    stop: Option<FinishReason>,
    usage: Option<Usage>,
}

impl ConverseToChatStream {
    /// A translator for a client that asked for `client_model`; `include_usage` is the client's
    /// `stream_options.include_usage` (see `openai_include_usage`). Converse streams carry no
    /// id: one is made up for the chunks.
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        let mut head = Vec::with_capacity(96 + client_model.len());
        head.extend_from_slice(b"data: {\"id\":");
        json_str(&mut head, &new_completion_id());
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        let _ = write!(head, "{}", unix_now());
        head.extend_from_slice(b",\"model\":");
        json_str(&mut head, client_model);
        head.push(b',');
        Self {
            include_usage,
            head,
            tool_index: Vec::new(),
            next_tool: 0,
            started: false,
            finished: false,
            stop: None,
            usage: None,
        }
    }

    /// For a stream that feeds another translator rather than a client (the Chat hub of a
    /// two-leg pair): chunks leave out `object` and `model`, which no translator reads, so
    /// they are cheaper to write and to parse again.
    pub fn for_hub(mut self) -> Self {
        self.head.clear();
        self.head.extend_from_slice(b"data: {\"id\":");
        json_str(&mut self.head, &new_completion_id());
        self.head.extend_from_slice(b",\"created\":");
        let _ = write!(self.head, "{}", unix_now());
        self.head.push(b',');
        self
    }

    /// Usage, once `metadata` came.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The stop reason, once `messageStop` came.
    pub fn stop_reason(&self) -> Option<FinishReason> {
        self.stop
    }

    /// Translates one upstream frame given by name (see the type's documentation for the
    /// `exception:` / `error:` prefixes) and payload, appending OpenAI SSE text to `out`.
    pub fn push_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        let name = name.ok_or_else(|| {
            TranslateError::invalid("Bedrock stream event", "event without a type")
        })?;
        let kind = if let Some(t) = name.strip_prefix(b"exception:") {
            Kind::Exception(std::str::from_utf8(t).unwrap_or("exception"))
        } else if let Some(t) = name.strip_prefix(b"error:") {
            Kind::Error(std::str::from_utf8(t).unwrap_or("error"))
        } else {
            Kind::Event(name)
        };
        self.push(kind, data, out)
    }

    /// Translates one decoded event-stream frame, dispatching on `:message-type` as
    /// [`Self::push_event`] documents.
    pub fn push_frame(
        &mut self,
        frame: &EventFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        match frame.message_type() {
            Some("exception") => self.push(
                Kind::Exception(frame.exception_type().unwrap_or("exception")),
                frame.payload(),
                out,
            ),
            Some("error") => self.push(
                Kind::Error(frame.str_header(":error-code").unwrap_or("error")),
                frame
                    .str_header(":error-message")
                    .unwrap_or_default()
                    .as_bytes(),
                out,
            ),
            _ => match frame.event_type() {
                Some(t) => self.push(Kind::Event(t.as_bytes()), frame.payload(), out),
                None => Err(TranslateError::invalid(
                    "Bedrock stream event",
                    "frame without :event-type",
                )),
            },
        }
    }

    fn push(
        &mut self,
        kind: Kind<'_>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.finished {
            return Ok(());
        }
        let name = match kind {
            Kind::Event(n) => n,
            Kind::Exception(t) => {
                let message = serde_json::from_slice::<br::StreamEvent<'_>>(data)
                    .ok()
                    .and_then(|e| e.message.map(|m| m.into_owned()))
                    .unwrap_or_else(|| String::from_utf8_lossy(data).into_owned());
                self.error(out, t, &message);
                return Ok(());
            }
            Kind::Error(code) => {
                self.error(out, code, &String::from_utf8_lossy(data));
                return Ok(());
            }
        };
        let ev: br::StreamEvent<'_> = super::sse::parse_event(data, "Bedrock stream event")?;
        match name {
            b"messageStart" => self.start(out),
            b"contentBlockStart" => {
                let Some(tu) = ev.start.and_then(|s| s.tool_use) else {
                    return Ok(());
                };
                let idx = ev.content_block_index.unwrap_or(0) as usize;
                if idx > super::error::MAX_BLOCK_INDEX {
                    return Err(TranslateError::invalid(
                        "Bedrock stream event",
                        format_args!("content block index {idx} is out of range"),
                    ));
                }
                let t = self.next_tool;
                self.next_tool += 1;
                if self.tool_index.len() <= idx {
                    self.tool_index.resize(idx + 1, u32::MAX);
                }
                if let Some(slot) = self.tool_index.get_mut(idx) {
                    *slot = t;
                }
                self.open_chunk(out);
                out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                let _ = write!(out, "{t}");
                out.extend_from_slice(b",\"id\":");
                json_str(out, &tu.tool_use_id);
                out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                json_str(out, &tu.name);
                out.extend_from_slice(b",\"arguments\":\"\"}}]}");
                Self::close_chunk(out, None);
            }
            b"contentBlockDelta" => {
                let Some(d) = ev.delta else { return Ok(()) };
                if let Some(text) = d.text.as_deref() {
                    self.text_chunk(out, b"content", text);
                } else if let Some(tu) = d.tool_use {
                    let t = ev
                        .content_block_index
                        .and_then(|i| self.tool_index.get(i as usize).copied())
                        .unwrap_or(u32::MAX);
                    if t == u32::MAX {
                        return Err(TranslateError::invalid(
                            "Bedrock stream event",
                            "toolUse delta outside a toolUse block",
                        ));
                    }
                    self.open_chunk(out);
                    out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    let _ = write!(out, "{t}");
                    out.extend_from_slice(b",\"function\":{\"arguments\":");
                    json_str(out, &tu.input);
                    out.extend_from_slice(b"}}]}");
                    Self::close_chunk(out, None);
                } else if let Some(text) = d.reasoning_content.and_then(|r| r.text) {
                    self.text_chunk(out, b"reasoning_content", &text);
                }
            }
            b"messageStop" => {
                let stop = ev
                    .stop_reason
                    .as_deref()
                    .map(FinishReason::from_bedrock)
                    .unwrap_or(FinishReason::EndTurn);
                self.stop = Some(stop);
                self.open_chunk(out);
                out.extend_from_slice(b"{}");
                Self::close_chunk(out, Some(stop.openai()));
            }
            b"metadata" => {
                if let Some(u) = &ev.usage {
                    self.usage = Some(Usage::from_bedrock(u));
                }
                self.end(out);
            }
            // contentBlockStop, and event types added later.
            _ => {}
        }
        Ok(())
    }

    /// Ends the client stream when the upstream ended without `metadata`: a normal end when
    /// `messageStop` came (no usage chunk: there is no usage to report), else an error chunk;
    /// `data: [DONE]` either way.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if self.stop.is_some() {
            self.end(out);
        } else {
            self.finished = true;
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&openai_error_body(
                "server_error",
                "upstream stream ended before completion",
                None,
            ));
            out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        out.extend_from_slice(&self.head);
        out.extend_from_slice(
            b"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        );
    }

    /// Writes the head of a one-choice chunk up to its `delta` value (the role chunk first).
    fn open_chunk(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":");
    }

    fn close_chunk(out: &mut Vec<u8>, finish: Option<&str>) {
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => json_str(out, f),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
    }

    fn text_chunk(&mut self, out: &mut Vec<u8>, key: &[u8], text: &str) {
        if text.is_empty() {
            return;
        }
        self.open_chunk(out);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        json_str(out, text);
        out.push(b'}');
        Self::close_chunk(out, None);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.finished = true;
        if let (true, Some(u)) = (self.include_usage, self.usage) {
            out.extend_from_slice(&self.head);
            out.extend_from_slice(b"\"choices\":[],\"usage\":");
            let _ = serde_json::to_writer(&mut *out, &u.to_openai());
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        self.finished = true;
        let (_, oa_type, code) = error_mapping(500, &kind.to_ascii_lowercase());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&openai_error_body(oa_type, message, code));
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::eventstream::{decode_frame, encode_frame};
    use super::*;

    /// SSE text → the `data:` payloads (`[DONE]` as a string).
    fn datas(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let d = b.strip_prefix("data: ").unwrap();
                serde_json::from_str(d).unwrap_or_else(|_| json!(d))
            })
            .collect()
    }

    fn run(s: &mut ConverseToChatStream, events: &[(&str, Value)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in events {
            s.push_event(
                Some(name.as_bytes()),
                &serde_json::to_vec(data).unwrap(),
                &mut out,
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn text_tool_and_usage_stream() {
        let mut s = ConverseToChatStream::new("alias", true);
        let out = run(
            &mut s,
            &[
                ("messageStart", json!({"role": "assistant"})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 0})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"text": "Checking"}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 1})),
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "weather"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"city\":"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 2})),
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "time"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 3})),
                ("messageStop", json!({"stopReason": "tool_use"})),
                (
                    "metadata",
                    json!({"usage": {"inputTokens": 20, "outputTokens": 7, "totalTokens": 31, "cacheReadInputTokens": 4}, "metrics": {"latencyMs": 300}}),
                ),
            ],
        );
        let d = datas(&out);
        let deltas: Vec<Value> = d
            .iter()
            .filter_map(|c| c.get("choices")?.get(0).map(|c| c["delta"].clone()))
            .collect();
        assert_eq!(
            deltas,
            [
                json!({"role": "assistant", "content": ""}),
                json!({"reasoning_content": "hmm"}),
                json!({"content": "Checking"}),
                json!({"tool_calls": [{"index": 0, "id": "tooluse_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                json!({"tool_calls": [{"index": 1, "id": "tooluse_b", "type": "function", "function": {"name": "time", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                json!({}),
            ]
        );
        let finish = &d[d.len() - 3];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(finish["model"], "alias");
        assert_eq!(finish["object"], "chat.completion.chunk");
        let usage = &d[d.len() - 2];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 24, "completion_tokens": 7, "total_tokens": 31, "prompt_tokens_details": {"cached_tokens": 4}})
        );
        assert_eq!(d[d.len() - 1], json!("[DONE]"));
        // All chunks share one id.
        let ids: std::collections::HashSet<_> = d.iter().filter_map(|c| c.get("id")).collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(s.stop_reason(), Some(FinishReason::ToolUse));
        assert_eq!(s.usage().unwrap().output_tokens, 7);
        // Nothing after the end.
        let mut more = Vec::new();
        s.push_event(Some(b"metadata"), b"{}", &mut more).unwrap();
        s.finish(&mut more);
        assert!(more.is_empty());
    }

    #[test]
    fn without_include_usage_there_is_no_usage_chunk() {
        let mut s = ConverseToChatStream::new("a", false);
        let out = run(
            &mut s,
            &[
                ("messageStart", json!({"role": "assistant"})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "hi"}}),
                ),
                ("messageStop", json!({"stopReason": "max_tokens"})),
                (
                    "metadata",
                    json!({"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}),
                ),
            ],
        );
        let d = datas(&out);
        assert_eq!(d.len(), 4);
        assert_eq!(d[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(d[3], json!("[DONE]"));
        assert!(s.usage().is_some());
    }

    #[test]
    fn exceptions_become_error_chunks() {
        let mut s = ConverseToChatStream::new("a", true);
        let mut out = run(
            &mut s,
            &[
                ("messageStart", json!({"role": "assistant"})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "par"}}),
                ),
            ],
        );
        s.push_event(
            Some(b"exception:throttlingException"),
            br#"{"message":"Too many tokens"}"#,
            &mut out,
        )
        .unwrap();
        let d = datas(&out);
        assert_eq!(
            d[2],
            json!({"error": {"message": "Too many tokens", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
        );
        assert_eq!(d[3], json!("[DONE]"));
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn frames_dispatch_on_message_type() {
        let mut wire = Vec::new();
        encode_frame(
            &[
                (":event-type", "messageStart"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            br#"{"role":"assistant"}"#,
            &mut wire,
        );
        encode_frame(
            &[
                (":exception-type", "modelStreamErrorException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"boom","originalStatusCode":500}"#,
            &mut wire,
        );
        let mut s = ConverseToChatStream::new("a", false);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = decode_frame(&wire[at..]).unwrap() {
            s.push_frame(&frame, &mut out).unwrap();
            at += used;
        }
        let d = datas(&out);
        assert_eq!(d[1]["error"]["type"], "server_error");
        assert_eq!(d[1]["error"]["code"], "model_error");
        assert_eq!(d[1]["error"]["message"], "boom");
        assert_eq!(d[2], json!("[DONE]"));

        let mut wire = Vec::new();
        encode_frame(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "oops"),
            ],
            b"",
            &mut wire,
        );
        let (frame, _) = decode_frame(&wire).unwrap().unwrap();
        let mut s = ConverseToChatStream::new("a", false);
        let mut out = Vec::new();
        s.push_frame(&frame, &mut out).unwrap();
        let d = datas(&out);
        assert_eq!(d[0]["error"]["message"], "oops");
        assert_eq!(d[0]["error"]["type"], "server_error");
    }

    #[test]
    fn finish_after_message_stop_ends_cleanly_and_early_end_is_an_error() {
        let mut s = ConverseToChatStream::new("a", true);
        let mut out = run(
            &mut s,
            &[
                ("messageStart", json!({"role": "assistant"})),
                ("messageStop", json!({"stopReason": "end_turn"})),
            ],
        );
        s.finish(&mut out);
        let d = datas(&out);
        assert_eq!(d[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(d[2], json!("[DONE]"));
        assert_eq!(d.len(), 3);

        let mut s = ConverseToChatStream::new("a", true);
        let mut out = run(&mut s, &[("messageStart", json!({"role": "assistant"}))]);
        s.finish(&mut out);
        let d = datas(&out);
        assert_eq!(d[1]["error"]["type"], "server_error");
        assert_eq!(d[2], json!("[DONE]"));
    }

    #[test]
    fn bad_events_are_invalid() {
        let mut s = ConverseToChatStream::new("a", false);
        let mut out = Vec::new();
        assert!(matches!(
            s.push_event(Some(b"contentBlockDelta"), b"{", &mut out),
            Err(TranslateError::Invalid { .. })
        ));
        assert!(matches!(
            s.push_event(
                Some(b"contentBlockDelta"),
                br#"{"contentBlockIndex":5,"delta":{"toolUse":{"input":"{}"}}}"#,
                &mut out
            ),
            Err(TranslateError::Invalid { .. })
        ));
        assert!(s.push_event(None, b"{}", &mut out).is_err());
        // A block index that would size a table of gigabytes is refused.
        let mut s = ConverseToChatStream::new("a", false);
        assert!(matches!(
            s.push_event(
                Some(b"contentBlockStart"),
                br#"{"contentBlockIndex":2147483648,"start":{"toolUse":{"toolUseId":"t","name":"f"}}}"#,
                &mut out
            ),
            Err(TranslateError::Invalid { .. })
        ));
    }
}
