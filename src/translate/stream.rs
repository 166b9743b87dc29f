//! Stream translators: stateful, event by event, each turning one upstream SSE event into the
//! complete SSE text of zero or more client events, appended to a buffer the caller reuses.
//!
//! - [`OpenAiToAnthropicStream`]: OpenAI `chat.completion.chunk` events (and `[DONE]`) in,
//!   Anthropic `message_start` … `message_stop` out.
//! - [`AnthropicToOpenAiStream`]: Anthropic events in, OpenAI chunks and `data: [DONE]` out.

use super::write::{json_str, num};

use super::anthropic_types as an;
use super::openai_types as oa;
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

fn trim_data(data: &[u8]) -> &[u8] {
    data.trim_ascii()
}

/// The Anthropic block open in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    None,
    Text(u32),
    Thinking(u32),
    /// A live tool call: its Anthropic block index and OpenAI `index`.
    Tool(u32, u32),
}

/// A tool call held back while another one streams (see [`OpenAiToAnthropicStream`]).
#[derive(Debug)]
struct HeldCall {
    openai_index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Translates an OpenAI Chat Completions stream into an Anthropic Messages stream.
///
/// Blocks: each run of text (or of `reasoning_content`, as a `thinking` block) is one block; each
/// tool call is one `tool_use` block. Tool calls are parallel in OpenAI and keyed by `index`;
/// Anthropic blocks may not overlap. The first call seen while no call is open streams live
/// (`input_json_delta` per fragment); fragments of any other call that starts while it is open
/// are buffered and that call is emitted whole (start, one `input_json_delta`, stop) when the
/// live one closes (at text, `finish_reason` or the end). Sequential calls (what OpenAI sends)
/// therefore stream the first call live; interleaved calls still give well-formed,
/// non-overlapping blocks.
///
/// `message_start` carries `input_tokens: 0` (OpenAI reports usage only at the end); the
/// `message_delta` carries the final `output_tokens` and, when the usage chunk came,
/// `input_tokens` and `cache_read_input_tokens`.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    started: bool,
    finished: bool,
    open: OpenBlock,
    next_block: u32,
    held: Vec<HeldCall>,
    stop: Option<FinishReason>,
    usage: Option<Usage>,
}

impl OpenAiToAnthropicStream {
    /// A translator for a client that asked for `client_model`.
    pub fn new(client_model: &str) -> Self {
        Self {
            model: client_model.to_owned(),
            started: false,
            finished: false,
            open: OpenBlock::None,
            next_block: 0,
            held: Vec::new(),
            stop: None,
            usage: None,
        }
    }

    /// Usage, once the upstream's usage chunk came.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The stop reason, once `finish_reason` came.
    pub fn stop_reason(&self) -> Option<FinishReason> {
        self.stop
    }

    /// Translates one upstream event (`data` is the `data:` payload; the name is unused, OpenAI
    /// sends none), appending Anthropic SSE text to `out`.
    pub fn push_event(
        &mut self,
        _event_name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.finished {
            return Ok(());
        }
        let data = trim_data(data);
        if data == b"[DONE]" {
            self.end(out);
            return Ok(());
        }
        let chunk: oa::ChatChunk<'_> = super::sse::parse_event(data, "OpenAI stream chunk")?;
        if let Some(err) = chunk.error {
            let kind = match err.kind.as_deref() {
                Some("rate_limit_error") | Some("rate_limit_exceeded") => "rate_limit_error",
                Some("invalid_request_error") => "invalid_request_error",
                _ => "api_error",
            };
            self.error(out, kind, &err.message);
            return Ok(());
        }
        if !self.started {
            self.start(out, &chunk.id);
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(Usage::from_openai(u));
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(());
        };
        let d = choice.delta;
        if let Some(r) = d.reasoning_content.as_deref().filter(|s| !s.is_empty()) {
            let idx = match self.open {
                OpenBlock::Thinking(i) => i,
                _ => self.open_block(out, OpenBlock::Thinking(0)),
            };
            self.block_delta(out, idx, b"thinking_delta\",\"thinking\":", r);
        }
        for text in [d.content.as_deref(), d.refusal.as_deref()]
            .into_iter()
            .flatten()
        {
            if text.is_empty() {
                continue;
            }
            let idx = match self.open {
                OpenBlock::Text(i) => i,
                _ => self.open_block(out, OpenBlock::Text(0)),
            };
            self.block_delta(out, idx, b"text_delta\",\"text\":", text);
        }
        for call in d.tool_calls.into_iter().flatten() {
            self.tool_fragment(out, call);
        }
        if let Some(reason) = choice.finish_reason {
            self.close_block(out);
            self.stop = Some(FinishReason::from_openai(&reason));
        }
        Ok(())
    }

    /// Ends the client stream when the upstream ended without `[DONE]`: a normal end when the
    /// finish reason came, else an `error` event.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if self.stop.is_some() {
            self.end(out);
        } else {
            self.error(out, "api_error", "upstream stream ended before completion");
        }
    }

    fn start(&mut self, out: &mut Vec<u8>, upstream_id: &str) {
        self.started = true;
        out.extend_from_slice(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":",
        );
        json_str(out, &format!("msg_{upstream_id}"));
        out.extend_from_slice(
            b",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":",
        );
        json_str(out, &self.model);
        out.extend_from_slice(
            b",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n",
        );
    }

    /// Closes whatever is open and opens `kind` (its index filled in); returns the new index.
    fn open_block(&mut self, out: &mut Vec<u8>, kind: OpenBlock) -> u32 {
        self.close_block(out);
        let idx = self.next_block;
        self.next_block += 1;
        let block: &[u8] = match kind {
            OpenBlock::Text(_) => {
                self.open = OpenBlock::Text(idx);
                b"{\"type\":\"text\",\"text\":\"\"}"
            }
            OpenBlock::Thinking(_) => {
                self.open = OpenBlock::Thinking(idx);
                b"{\"type\":\"thinking\",\"thinking\":\"\"}"
            }
            // The caller writes the tool_use start: it needs the id and name.
            OpenBlock::Tool(_, oi) => {
                self.open = OpenBlock::Tool(idx, oi);
                return idx;
            }
            OpenBlock::None => return idx,
        };
        out.extend_from_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        num(out, idx.into());
        out.extend_from_slice(b",\"content_block\":");
        out.extend_from_slice(block);
        out.extend_from_slice(b"}\n\n");
        idx
    }

    fn tool_start(out: &mut Vec<u8>, idx: u32, id: &str, name: &str) {
        out.extend_from_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        num(out, idx.into());
        out.extend_from_slice(b",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        json_str(out, id);
        out.extend_from_slice(b",\"name\":");
        json_str(out, name);
        out.extend_from_slice(b",\"input\":{}}}\n\n");
    }

    fn block_delta(&self, out: &mut Vec<u8>, idx: u32, kind_and_key: &[u8], text: &str) {
        out.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        num(out, idx.into());
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(kind_and_key);
        json_str(out, text);
        out.extend_from_slice(b"}}\n\n");
    }

    fn block_stop(out: &mut Vec<u8>, idx: u32) {
        out.extend_from_slice(
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
        );
        num(out, idx.into());
        out.extend_from_slice(b"}\n\n");
    }

    /// Closes the open block; after a live tool call, emits the held ones.
    fn close_block(&mut self, out: &mut Vec<u8>) {
        let was_tool = match self.open {
            OpenBlock::None => return,
            OpenBlock::Text(i) | OpenBlock::Thinking(i) => {
                Self::block_stop(out, i);
                false
            }
            OpenBlock::Tool(i, _) => {
                Self::block_stop(out, i);
                true
            }
        };
        self.open = OpenBlock::None;
        if was_tool {
            for call in std::mem::take(&mut self.held) {
                let idx = self.next_block;
                self.next_block += 1;
                Self::tool_start(out, idx, &call.id, &call.name);
                if !call.arguments.is_empty() {
                    self.block_delta(
                        out,
                        idx,
                        b"input_json_delta\",\"partial_json\":",
                        &call.arguments,
                    );
                }
                Self::block_stop(out, idx);
            }
        }
    }

    fn tool_fragment(&mut self, out: &mut Vec<u8>, call: oa::ToolCallDelta<'_>) {
        let f = call.function.unwrap_or_default();
        let args = f.arguments.as_deref().unwrap_or_default();
        match self.open {
            OpenBlock::Tool(idx, oi) if oi == call.index => {
                if !args.is_empty() {
                    self.block_delta(out, idx, b"input_json_delta\",\"partial_json\":", args);
                }
            }
            OpenBlock::Tool(..) => {
                if let Some(h) = self.held.iter_mut().find(|h| h.openai_index == call.index) {
                    h.arguments.push_str(args);
                    // Some OpenAI-compatible servers repeat id and name on every fragment.
                    if h.name.is_empty() {
                        h.name = f.name.as_deref().unwrap_or_default().to_owned();
                    }
                    if h.id.is_empty() {
                        h.id = call.id.as_deref().unwrap_or_default().to_owned();
                    }
                } else {
                    self.held.push(HeldCall {
                        openai_index: call.index,
                        id: call.id.as_deref().unwrap_or_default().to_owned(),
                        name: f.name.as_deref().unwrap_or_default().to_owned(),
                        arguments: args.to_owned(),
                    });
                }
            }
            _ => {
                let idx = self.open_block(out, OpenBlock::Tool(0, call.index));
                Self::tool_start(
                    out,
                    idx,
                    call.id.as_deref().unwrap_or_default(),
                    f.name.as_deref().unwrap_or_default(),
                );
                if !args.is_empty() {
                    self.block_delta(out, idx, b"input_json_delta\",\"partial_json\":", args);
                }
            }
        }
    }

    /// `message_delta` and `message_stop`.
    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start(out, "");
        }
        self.close_block(out);
        self.finished = true;
        let stop = self.stop.unwrap_or(FinishReason::EndTurn);
        out.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
        out.extend_from_slice(stop.anthropic().as_bytes());
        out.extend_from_slice(b"\",\"stop_sequence\":null},\"usage\":{");
        if let Some(u) = self.usage {
            out.extend_from_slice(b"\"input_tokens\":");
            num(out, u.input_tokens);
            out.extend_from_slice(b",\"cache_read_input_tokens\":");
            num(out, u.cache_read_tokens);
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"\"output_tokens\":");
        num(out, self.usage.map_or(0, |u| u.output_tokens));
        out.extend_from_slice(b"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }

    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        self.finished = true;
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(&super::response::anthropic_error_body(kind, message));
        out.extend_from_slice(b"\n\n");
    }
}

/// Translates an Anthropic Messages stream into an OpenAI Chat Completions stream.
///
/// The first chunk carries `role`; text, `thinking` (as `reasoning_content`, the field
/// OpenAI-compatible servers use) and tool input arrive as deltas; each `tool_use` block becomes
/// a tool call with its own `index` (0, 1, …), `id` and `name` on its first delta; the
/// `message_delta` becomes the chunk with `finish_reason`; `message_stop` gives the usage chunk
/// (when the client asked `include_usage`) and `data: [DONE]`. An `error` event becomes
/// `data: {"error":{..}}` followed by `data: [DONE]`.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    model: String,
    include_usage: bool,
    /// `data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,` built at `message_start`.
    head: Vec<u8>,
    /// OpenAI tool index per Anthropic block index (`u32::MAX`: not a tool block).
    tool_index: Vec<u32>,
    next_tool: u32,
    finished: bool,
    stop: Option<FinishReason>,
    usage: Usage,
    saw_usage: bool,
    /// Output feeds another translator (see [`Self::for_hub`]).
    hub: bool,
}

impl AnthropicToOpenAiStream {
    /// A translator for a client that asked for `client_model`; `include_usage` is the client's
    /// `stream_options.include_usage` (see `openai_include_usage`).
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            model: client_model.to_owned(),
            include_usage,
            head: Vec::new(),
            tool_index: Vec::new(),
            next_tool: 0,
            finished: false,
            stop: None,
            usage: Usage::default(),
            saw_usage: false,
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

    /// Usage as reported so far (`message_start`, then `message_delta`).
    pub fn usage(&self) -> Option<Usage> {
        self.saw_usage.then_some(self.usage)
    }

    /// The stop reason, once `message_delta` came.
    pub fn stop_reason(&self) -> Option<FinishReason> {
        self.stop
    }

    /// Translates one upstream event (its `event:` name, unused: the `data` carries the type;
    /// and its `data:` payload), appending OpenAI SSE text to `out`.
    pub fn push_event(
        &mut self,
        _event_name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.finished {
            return Ok(());
        }
        let ev: an::StreamEvent<'_> =
            super::sse::parse_event(trim_data(data), "Anthropic stream event")?;
        match &*ev.kind {
            "message_start" => {
                let id = ev.message.as_ref().map_or("", |m| m.id.as_str());
                self.build_head(id);
                if let Some(u) = ev.message.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.usage = Usage::from_anthropic(u);
                    self.saw_usage = true;
                }
                self.chunk(out, b"{\"role\":\"assistant\",\"content\":\"\"}", None);
            }
            "content_block_start" => {
                let (Some(idx), Some(block)) = (ev.index, ev.content_block) else {
                    return Err(TranslateError::invalid(
                        "Anthropic stream event",
                        "content_block_start without index or block",
                    ));
                };
                if block.kind == "tool_use" {
                    let t = self.next_tool;
                    self.next_tool += 1;
                    let slot = idx as usize;
                    if slot > super::error::MAX_BLOCK_INDEX {
                        return Err(TranslateError::invalid(
                            "Anthropic stream event",
                            format_args!("content block index {idx} is out of range"),
                        ));
                    }
                    if self.tool_index.len() <= slot {
                        self.tool_index.resize(slot + 1, u32::MAX);
                    }
                    if let Some(s) = self.tool_index.get_mut(slot) {
                        *s = t;
                    }
                    let mut d = Vec::with_capacity(96);
                    d.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    num(&mut d, t.into());
                    d.extend_from_slice(b",\"id\":");
                    json_str(&mut d, block.id.as_deref().unwrap_or_default());
                    d.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                    json_str(&mut d, block.name.as_deref().unwrap_or_default());
                    d.extend_from_slice(b",\"arguments\":\"\"}}]}");
                    self.chunk(out, &d, None);
                } else if let Some(t) = block.text.as_deref().filter(|t| !t.is_empty()) {
                    self.text_chunk(out, b"content", t);
                }
            }
            "content_block_delta" => {
                let Some(d) = ev.delta else { return Ok(()) };
                match d.kind.as_deref() {
                    Some("text_delta") => {
                        self.text_chunk(out, b"content", d.text.as_deref().unwrap_or_default())
                    }
                    Some("thinking_delta") => self.text_chunk(
                        out,
                        b"reasoning_content",
                        d.thinking.as_deref().unwrap_or_default(),
                    ),
                    Some("input_json_delta") => {
                        let t = ev
                            .index
                            .and_then(|i| self.tool_index.get(i as usize).copied())
                            .unwrap_or(u32::MAX);
                        if t == u32::MAX {
                            return Err(TranslateError::invalid(
                                "Anthropic stream event",
                                "input_json_delta outside a tool_use block",
                            ));
                        }
                        let mut b = Vec::with_capacity(64);
                        b.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                        num(&mut b, t.into());
                        b.extend_from_slice(b",\"function\":{\"arguments\":");
                        json_str(&mut b, d.partial_json.as_deref().unwrap_or_default());
                        b.extend_from_slice(b"}}]}");
                        self.chunk(out, &b, None);
                    }
                    // signature_delta, citations_delta: nothing an OpenAI client can use.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = ev.usage {
                    self.usage.output_tokens = u.output_tokens;
                    if let Some(n) = u.input_tokens {
                        self.usage.input_tokens = n;
                    }
                    if let Some(n) = u.cache_read_input_tokens {
                        self.usage.cache_read_tokens = n;
                    }
                    if let Some(n) = u.cache_creation_input_tokens {
                        self.usage.cache_creation_tokens = n;
                    }
                    self.saw_usage = true;
                }
                if let Some(r) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    let stop = FinishReason::from_anthropic(r);
                    self.stop = Some(stop);
                    self.chunk(out, b"{}", Some(stop.openai()));
                }
            }
            "message_stop" => self.end(out),
            "error" => {
                let e = ev.error.unwrap_or_default();
                let (_, body) = super::response::anthropic_error_to_openai(
                    if e.kind == "overloaded_error" {
                        529
                    } else {
                        500
                    },
                    &super::response::anthropic_error_body(&e.kind, &e.message),
                );
                self.finished = true;
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
            }
            // ping, and event types added later (Anthropic's versioning policy).
            _ => {}
        }
        Ok(())
    }

    /// Ends the client stream when the upstream ended without `message_stop`: a normal end when
    /// `message_delta` came, else an error chunk; `data: [DONE]` either way.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if self.stop.is_some() {
            self.end(out);
        } else {
            self.finished = true;
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&super::response::openai_error_body(
                "server_error",
                "upstream stream ended before completion",
                None,
            ));
            out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
        }
    }

    fn build_head(&mut self, id: &str) {
        self.head.clear();
        self.head.extend_from_slice(b"data: {\"id\":");
        json_str(&mut self.head, &format!("chatcmpl-{id}"));
        if self.hub {
            self.head.extend_from_slice(b",\"created\":");
            num(&mut self.head, super::response::unix_now());
            self.head.push(b',');
            return;
        }
        self.head
            .extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        num(&mut self.head, super::response::unix_now());
        self.head.extend_from_slice(b",\"model\":");
        json_str(&mut self.head, &self.model);
        self.head.push(b',');
    }

    /// One chunk whose single choice has `delta` (JSON) and `finish_reason`.
    fn chunk(&mut self, out: &mut Vec<u8>, delta: &[u8], finish: Option<&str>) {
        if self.head.is_empty() {
            self.build_head("");
        }
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":");
        out.extend_from_slice(delta);
        out.extend_from_slice(if self.hub {
            b",\"finish_reason\":"
        } else {
            b",\"logprobs\":null,\"finish_reason\":"
        });
        match finish {
            Some(f) => {
                out.push(b'"');
                out.extend_from_slice(f.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
    }

    /// A chunk whose delta is `{"<key>": text}`, written straight into `out`.
    fn text_chunk(&mut self, out: &mut Vec<u8>, key: &[u8], text: &str) {
        if self.head.is_empty() {
            self.build_head("");
        }
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

    fn end(&mut self, out: &mut Vec<u8>) {
        self.finished = true;
        if self.include_usage {
            if self.head.is_empty() {
                self.build_head("");
            }
            out.extend_from_slice(&self.head);
            out.extend_from_slice(b"\"choices\":[],\"usage\":");
            let _ = serde_json::to_writer(&mut *out, &self.usage.to_openai());
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Client SSE text → `[(event name or "", data)]`.
    fn events(out: &[u8]) -> Vec<(String, Value)> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let mut name = String::new();
                let mut data = Value::Null;
                for line in b.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(d).unwrap_or_else(|_| json!(d));
                    }
                }
                (name, data)
            })
            .collect()
    }

    fn oa_chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
        .unwrap()
    }

    fn tc(index: u32, id: Option<&str>, args: &str) -> Value {
        match id {
            Some(id) => json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": format!("f{index}"), "arguments": args}}]}),
            None => json!({"tool_calls": [{"index": index, "function": {"arguments": args}}]}),
        }
    }

    #[test]
    fn interleaved_openai_tool_calls_give_non_overlapping_blocks() {
        let mut s = OpenAiToAnthropicStream::new("alias");
        let mut out = Vec::new();
        for data in [
            oa_chunk(
                json!({"role": "assistant", "content": "Let me look."}),
                None,
            ),
            oa_chunk(tc(0, Some("call_a"), "{\"x\":"), None),
            oa_chunk(tc(1, Some("call_b"), "{\"y\":"), None),
            oa_chunk(tc(0, None, "1}"), None),
            oa_chunk(tc(1, None, "2}"), None),
            oa_chunk(json!({}), Some("tool_calls")),
        ] {
            s.push_event(None, &data, &mut out).unwrap();
        }
        s.push_event(None, b"[DONE]", &mut out).unwrap();
        let evs = events(&out);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(evs[4].1["content_block"]["id"], "call_a");
        assert_eq!(evs[4].1["index"], 1);
        assert_eq!(evs[6].1["delta"]["partial_json"], "1}");
        assert_eq!(evs[8].1["content_block"]["id"], "call_b");
        assert_eq!(evs[8].1["index"], 2);
        assert_eq!(evs[9].1["delta"]["partial_json"], "{\"y\":2}");
        assert_eq!(evs[11].1["delta"]["stop_reason"], "tool_use");
        // Every block is started and stopped once, in order, never two open at a time.
        let mut open: Option<u64> = None;
        for (n, d) in &evs {
            match n.as_str() {
                "content_block_start" => {
                    assert!(open.is_none());
                    open = d["index"].as_u64();
                }
                "content_block_delta" => assert_eq!(open, d["index"].as_u64()),
                "content_block_stop" => {
                    assert_eq!(open, d["index"].as_u64());
                    open = None;
                }
                _ => {}
            }
        }
        assert_eq!(s.stop_reason(), Some(FinishReason::ToolUse));
    }

    #[test]
    fn repeated_ids_and_names_on_fragments_are_not_duplicated() {
        let mut s = OpenAiToAnthropicStream::new("alias");
        let mut out = Vec::new();
        for data in [
            oa_chunk(tc(0, Some("call_a"), "{"), None),
            oa_chunk(tc(1, Some("call_b"), "{"), None),
            oa_chunk(tc(0, Some("call_a"), "}"), None),
            oa_chunk(tc(1, Some("call_b"), "}"), Some("tool_calls")),
        ] {
            s.push_event(None, &data, &mut out).unwrap();
        }
        s.finish(&mut out);
        let starts: Vec<Value> = events(&out)
            .into_iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| d["content_block"].clone())
            .collect();
        assert_eq!(
            starts,
            [
                json!({"type": "tool_use", "id": "call_a", "name": "f0", "input": {}}),
                json!({"type": "tool_use", "id": "call_b", "name": "f1", "input": {}})
            ]
        );
    }

    #[test]
    fn reasoning_content_becomes_a_thinking_block() {
        let mut s = OpenAiToAnthropicStream::new("alias");
        let mut out = Vec::new();
        s.push_event(
            None,
            &oa_chunk(json!({"reasoning_content": "hmm"}), None),
            &mut out,
        )
        .unwrap();
        s.push_event(
            None,
            &oa_chunk(json!({"content": "ok"}), Some("stop")),
            &mut out,
        )
        .unwrap();
        s.finish(&mut out);
        let evs = events(&out);
        assert_eq!(
            evs[1].1["content_block"],
            json!({"type": "thinking", "thinking": ""})
        );
        assert_eq!(
            evs[2].1["delta"],
            json!({"type": "thinking_delta", "thinking": "hmm"})
        );
        assert_eq!(evs[3].0, "content_block_stop");
        assert_eq!(
            evs[5].1["delta"],
            json!({"type": "text_delta", "text": "ok"})
        );
        assert_eq!(
            evs.last().unwrap().0,
            "message_stop",
            "finish after finish_reason ends normally"
        );
    }

    #[test]
    fn openai_stream_cut_short_ends_with_an_error_event() {
        let mut s = OpenAiToAnthropicStream::new("alias");
        let mut out = Vec::new();
        s.push_event(None, &oa_chunk(json!({"content": "par"}), None), &mut out)
            .unwrap();
        s.finish(&mut out);
        let evs = events(&out);
        let (name, data) = evs.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "api_error");
        out.clear();
        s.push_event(None, b"[DONE]", &mut out).unwrap();
        assert!(out.is_empty(), "nothing after the end");
    }

    #[test]
    fn openai_error_chunk_becomes_an_anthropic_error_event() {
        let mut s = OpenAiToAnthropicStream::new("alias");
        let mut out = Vec::new();
        s.push_event(
            None,
            br#"{"error":{"message":"boom","type":"server_error"}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            events(&out),
            [(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
            )]
        );
    }

    fn an_events(s: &mut AnthropicToOpenAiStream, evs: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in evs {
            let name = e["type"].as_str().unwrap().as_bytes().to_vec();
            s.push_event(Some(&name), &serde_json::to_vec(e).unwrap(), &mut out)
                .unwrap();
        }
        out
    }

    fn msg_start() -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}})
    }

    #[test]
    fn anthropic_error_event_becomes_openai_error_and_done() {
        let mut s = AnthropicToOpenAiStream::new("alias", true);
        let out = an_events(
            &mut s,
            &[
                msg_start(),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ],
        );
        let evs = events(&out);
        assert_eq!(
            evs[1].1,
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded"}})
        );
        assert_eq!(evs[2].1, json!("[DONE]"));
        assert_eq!(evs.len(), 3);
    }

    /// A provider's block index sizes a table: one of 2^31 must be refused, not allocated.
    #[test]
    fn huge_anthropic_block_index_is_refused() {
        let mut s = AnthropicToOpenAiStream::new("alias", true);
        let mut out = an_events(&mut s, &[msg_start()]);
        let start = json!({"type": "content_block_start", "index": 2147483648u32,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}});
        let data = serde_json::to_vec(&start).unwrap();
        let err = s
            .push_event(Some(b"content_block_start"), &data, &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn anthropic_stream_cut_short_ends_with_an_error_then_done() {
        let mut s = AnthropicToOpenAiStream::new("alias", false);
        let mut out = an_events(&mut s, &[msg_start()]);
        s.finish(&mut out);
        let evs = events(&out);
        assert_eq!(evs[1].1["error"]["type"], "server_error");
        assert_eq!(evs[2].1, json!("[DONE]"));
    }

    #[test]
    fn anthropic_usage_and_thinking_reach_the_openai_client() {
        let mut s = AnthropicToOpenAiStream::new("alias", true);
        let out = an_events(
            &mut s,
            &[
                msg_start(),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null}, "usage": {"output_tokens": 7}}),
                json!({"type": "message_stop"}),
            ],
        );
        let evs = events(&out);
        assert_eq!(
            evs[1].1["choices"][0]["delta"],
            json!({"reasoning_content": "hmm"})
        );
        assert_eq!(evs[2].1["choices"][0]["finish_reason"], "length");
        assert_eq!(
            evs[3].1["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22,
                "prompt_tokens_details": {"cached_tokens": 5}})
        );
        assert_eq!(evs[4].1, json!("[DONE]"));
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 7,
                cache_read_tokens: 5,
                cache_creation_tokens: 0
            })
        );
        assert_eq!(s.stop_reason(), Some(FinishReason::MaxTokens));
    }
}
