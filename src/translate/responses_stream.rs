//! [`ChatToResponsesStream`]: an OpenAI Chat Completions stream in, an OpenAI Responses stream
//! out, event by event.

use super::write::{json_str, num};

use super::openai_types as oa;
use super::responses::{function_call_item_id, id_base, status_for, ResponseParts, ResponsesEcho};
use super::responses_types as rt;
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

/// Appends `value` as JSON (writing a derived `Serialize` into a `Vec` cannot fail).
fn json_value<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Writes `event: KIND\ndata: {"type":"KIND","sequence_number":N` and counts the event; the
/// caller appends the other fields and [`end`].
fn begin(seq: &mut u64, out: &mut Vec<u8>, kind: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    num(out, *seq);
    *seq += 1;
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"}\n\n");
}

/// `,"item_id":ID,"output_index":N`.
fn item_ref(out: &mut Vec<u8>, item_id: &str, output_index: usize) {
    out.extend_from_slice(b",\"item_id\":");
    json_str(out, item_id);
    out.extend_from_slice(b",\"output_index\":");
    num(out, output_index as u64);
}

/// The kind of a message content part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

/// An output item of the response being streamed.
#[derive(Debug)]
enum Item {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        parts: Vec<(PartKind, String)>,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        chat_index: u32,
    },
}

/// An output item and its status (`in_progress` while open).
#[derive(Debug)]
struct Slot {
    item: Item,
    status: &'static str,
}

impl Slot {
    fn id(&self) -> &str {
        match &self.item {
            Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    /// The item as the API shows it (`status` overrides an open item's).
    fn output(&self, open_status: &'static str) -> rt::OutputItem {
        let status = if self.status == "in_progress" {
            open_status
        } else {
            self.status
        };
        match &self.item {
            Item::Reasoning { id, text } => rt::OutputItem::Reasoning {
                id: id.clone(),
                summary: Vec::new(),
                content: vec![rt::ReasoningText {
                    kind: "reasoning_text".into(),
                    text: text.clone(),
                }],
                status: status.into(),
            },
            Item::Message { id, parts } => rt::OutputItem::Message {
                id: id.clone(),
                status: status.into(),
                role: "assistant".into(),
                content: parts.iter().map(|(k, t)| part(*k, t)).collect(),
            },
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => rt::OutputItem::FunctionCall {
                id: id.clone(),
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
                status: status.into(),
            },
        }
    }
}

fn part(kind: PartKind, text: &str) -> rt::OutputContent {
    match kind {
        PartKind::Text => rt::OutputContent::OutputText {
            text: text.to_owned(),
            annotations: Vec::new(),
            logprobs: Vec::new(),
        },
        PartKind::Refusal => rt::OutputContent::Refusal {
            refusal: text.to_owned(),
        },
    }
}

/// A tool call held back while another one streams (see [`ChatToResponsesStream`]).
#[derive(Debug)]
struct HeldCall {
    chat_index: u32,
    call_id: String,
    name: String,
    arguments: String,
}

/// The item open in the client's stream (its position in `slots`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Reasoning(usize),
    Message(usize),
    /// A live function call and its chat `index`.
    Call(usize, u32),
}

/// Translates an OpenAI Chat Completions stream (`data:` payloads, `[DONE]` included) into an
/// OpenAI Responses stream: `event: <type>\ndata: <json with "type" and "sequence_number">`.
///
/// Events, in OpenAI's order: `response.created`, `response.in_progress`, then per output item
/// `response.output_item.added`, its content events and `response.output_item.done`, and
/// finally `response.completed` (or `response.incomplete` for finish reasons `length` and
/// `content_filter`) carrying the whole response with usage. Items:
///
/// - `reasoning_content` (OpenAI-compatible servers): a `reasoning` item with one
///   `reasoning_text` part (`response.content_part.added`, `response.reasoning_text.delta`…,
///   `response.reasoning_text.done`, `response.content_part.done`);
/// - `content` / `refusal`: a `message` item with `output_text` / `refusal` parts
///   (`response.output_text.delta` / `response.refusal.delta` and their `.done`);
/// - each tool call: a `function_call` item (`response.function_call_arguments.delta`…,
///   `response.function_call_arguments.done`).
///
/// Chat tool calls are keyed by `index` and may in principle interleave; Responses items should
/// not. A new call closes the live one when the live one's arguments are complete JSON (what
/// OpenAI sends: one call after the other, each streamed live); otherwise the new call is held
/// back and emitted whole (one delta) when the live one closes.
///
/// An upstream `{"error":…}` chunk, or an end without `finish_reason`, gives an `error` event
/// then `response.failed` (status `failed`, `error.code` `server_error` or
/// `rate_limit_exceeded`). `response.created` always comes first, as the SDK requires.
#[derive(Debug)]
pub struct ChatToResponsesStream {
    model: String,
    echo: ResponsesEcho,
    seq: u64,
    started: bool,
    finished: bool,
    base: String,
    created_at: u64,
    slots: Vec<Slot>,
    open: Open,
    held: Vec<HeldCall>,
    stop: Option<FinishReason>,
    usage: Option<rt::ChatUsage>,
}

impl ChatToResponsesStream {
    /// A translator for a client that asked for `client_model`, with the request echo fields
    /// at their defaults.
    pub fn new(client_model: &str) -> Self {
        Self::with_echo(client_model, ResponsesEcho::default())
    }

    /// A translator whose response objects echo the client's request (see [`ResponsesEcho`]).
    pub fn with_echo(client_model: &str, echo: ResponsesEcho) -> Self {
        Self {
            model: client_model.to_owned(),
            echo,
            seq: 0,
            started: false,
            finished: false,
            base: String::new(),
            created_at: 0,
            slots: Vec::new(),
            open: Open::None,
            held: Vec::new(),
            stop: None,
            usage: None,
        }
    }

    /// Usage, once the upstream's usage chunk came.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(rt::ChatUsage::to_token_usage)
    }

    /// The stop reason, once `finish_reason` came.
    pub fn stop_reason(&self) -> Option<FinishReason> {
        self.stop
    }

    /// Translates one upstream event (`data` is the `data:` payload; the name is unused, OpenAI
    /// sends none), appending Responses SSE text to `out`.
    pub fn push_event(
        &mut self,
        _event_name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.finished {
            return Ok(());
        }
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.complete(out);
            return Ok(());
        }
        let chunk: rt::ChatChunkIn<'_> = super::sse::parse_event(data, "OpenAI stream chunk")?;
        if let Some(err) = chunk.error {
            self.fail(out, &err);
            return Ok(());
        }
        if !self.started {
            self.start(out, &chunk.id, chunk.created);
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(());
        };
        let d = choice.delta;
        if let Some(r) = d.reasoning_content.as_deref().filter(|s| !s.is_empty()) {
            self.reasoning_delta(out, r);
        }
        if let Some(t) = d.content.as_deref().filter(|s| !s.is_empty()) {
            self.message_delta(out, PartKind::Text, t);
        }
        if let Some(t) = d.refusal.as_deref().filter(|s| !s.is_empty()) {
            self.message_delta(out, PartKind::Refusal, t);
        }
        for call in d.tool_calls.into_iter().flatten() {
            self.tool_fragment(out, call)?;
        }
        if let Some(reason) = choice.finish_reason {
            let stop = FinishReason::from_openai(&reason);
            self.stop = Some(stop);
            let closing = if status_for(Some(stop)).1.is_some() {
                "incomplete"
            } else {
                "completed"
            };
            self.close_open(out, closing);
        }
        Ok(())
    }

    /// Ends the client stream when the upstream ended without `[DONE]`: a normal end when the
    /// finish reason came, else an `error` event and `response.failed`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.complete(out);
        }
    }

    fn start(&mut self, out: &mut Vec<u8>, upstream_id: &str, created: Option<u64>) {
        self.started = true;
        self.base = id_base(upstream_id);
        self.created_at = created
            .filter(|c| *c > 0)
            .unwrap_or_else(super::response::unix_now);
        for kind in ["response.created", "response.in_progress"] {
            let response = self.response("in_progress", None, None, "in_progress");
            begin(&mut self.seq, out, kind);
            out.extend_from_slice(b",\"response\":");
            json_value(out, &response);
            end(out);
        }
    }

    fn response(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        error: Option<rt::ResponseError>,
        open_status: &'static str,
    ) -> rt::ResponseObject {
        ResponseParts {
            id: format!("resp_{}", self.base),
            created_at: self.created_at,
            status,
            error,
            incomplete,
            output: self.slots.iter().map(|s| s.output(open_status)).collect(),
            usage: self.usage.map(rt::ChatUsage::to_responses),
        }
        .build(&self.model, &self.echo)
    }

    /// Adds an item and sends `response.output_item.added`; returns its output index.
    fn add_item(&mut self, out: &mut Vec<u8>, item: Item) -> usize {
        let index = self.slots.len();
        let slot = Slot {
            item,
            status: "in_progress",
        };
        let shown = slot.output("in_progress");
        self.slots.push(slot);
        begin(&mut self.seq, out, "response.output_item.added");
        out.extend_from_slice(b",\"output_index\":");
        num(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        json_value(out, &shown);
        end(out);
        index
    }

    fn item_done(&mut self, out: &mut Vec<u8>, index: usize, status: &'static str) {
        // `index` always names an item (`add_item` returned it); a stale one writes nothing.
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.status = status;
        let shown = slot.output(status);
        begin(&mut self.seq, out, "response.output_item.done");
        out.extend_from_slice(b",\"output_index\":");
        num(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        json_value(out, &shown);
        end(out);
    }

    /// `response.content_part.added` / `.done` for part `content_index` of item `index`.
    fn part_event(&mut self, out: &mut Vec<u8>, kind: &str, index: usize, content_index: usize) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let shown = match &slot.item {
            Item::Reasoning { text, .. } => {
                let text = if kind.ends_with("added") { "" } else { text };
                serde_json::to_value(rt::ReasoningText {
                    kind: "reasoning_text".into(),
                    text: text.to_owned(),
                })
            }
            Item::Message { parts, .. } => {
                let (k, text) = parts
                    .get(content_index)
                    .map_or((PartKind::Text, ""), |(k, t)| (*k, t.as_str()));
                let text = if kind.ends_with("added") { "" } else { text };
                serde_json::to_value(part(k, text))
            }
            Item::Call { .. } => return,
        };
        begin(&mut self.seq, out, kind);
        item_ref(out, slot.id(), index);
        out.extend_from_slice(b",\"content_index\":");
        num(out, content_index as u64);
        out.extend_from_slice(b",\"part\":");
        json_value(out, &shown.unwrap_or_default());
        end(out);
    }

    fn reasoning_delta(&mut self, out: &mut Vec<u8>, text: &str) {
        let index = match self.open {
            Open::Reasoning(i) => i,
            _ => {
                self.close_open(out, "completed");
                let id = format!("rs_{}", self.base);
                let i = self.add_item(
                    out,
                    Item::Reasoning {
                        id,
                        text: String::new(),
                    },
                );
                self.open = Open::Reasoning(i);
                self.part_event(out, "response.content_part.added", i, 0);
                i
            }
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if let Item::Reasoning { text: acc, .. } = &mut slot.item {
            acc.push_str(text);
        }
        begin(&mut self.seq, out, "response.reasoning_text.delta");
        item_ref(out, slot.id(), index);
        out.extend_from_slice(b",\"content_index\":0,\"delta\":");
        json_str(out, text);
        end(out);
    }

    fn message_delta(&mut self, out: &mut Vec<u8>, kind: PartKind, text: &str) {
        let index = match self.open {
            Open::Message(i) => i,
            _ => {
                self.close_open(out, "completed");
                let id = format!("msg_{}", self.base);
                let i = self.add_item(
                    out,
                    Item::Message {
                        id,
                        parts: Vec::new(),
                    },
                );
                self.open = Open::Message(i);
                i
            }
        };
        let (last_kind, count) = match self.slots.get(index).map(|s| &s.item) {
            Some(Item::Message { parts, .. }) => (parts.last().map(|(k, _)| *k), parts.len()),
            _ => (None, 0),
        };
        let content_index = if last_kind == Some(kind) {
            count - 1
        } else {
            if last_kind.is_some() {
                self.part_done(out, index, count - 1);
            }
            if let Some(Item::Message { parts, .. }) =
                self.slots.get_mut(index).map(|s| &mut s.item)
            {
                parts.push((kind, String::new()));
            }
            self.part_event(out, "response.content_part.added", index, count);
            count
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if let Item::Message { parts, .. } = &mut slot.item {
            if let Some((_, acc)) = parts.get_mut(content_index) {
                acc.push_str(text);
            }
        }
        let event = match kind {
            PartKind::Text => "response.output_text.delta",
            PartKind::Refusal => "response.refusal.delta",
        };
        begin(&mut self.seq, out, event);
        item_ref(out, slot.id(), index);
        out.extend_from_slice(b",\"content_index\":");
        num(out, content_index as u64);
        out.extend_from_slice(b",\"delta\":");
        json_str(out, text);
        if kind == PartKind::Text {
            out.extend_from_slice(b",\"logprobs\":[]");
        }
        end(out);
    }

    /// `response.output_text.done` / `response.refusal.done` and `response.content_part.done`.
    fn part_done(&mut self, out: &mut Vec<u8>, index: usize, content_index: usize) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let Item::Message { parts, .. } = &slot.item else {
            return;
        };
        let Some((kind, text)) = parts.get(content_index) else {
            return;
        };
        let id = slot.id();
        match kind {
            PartKind::Text => {
                begin(&mut self.seq, out, "response.output_text.done");
                item_ref(out, id, index);
                out.extend_from_slice(b",\"content_index\":");
                num(out, content_index as u64);
                out.extend_from_slice(b",\"text\":");
                json_str(out, text);
                out.extend_from_slice(b",\"logprobs\":[]");
            }
            PartKind::Refusal => {
                begin(&mut self.seq, out, "response.refusal.done");
                item_ref(out, id, index);
                out.extend_from_slice(b",\"content_index\":");
                num(out, content_index as u64);
                out.extend_from_slice(b",\"refusal\":");
                json_str(out, text);
            }
        }
        end(out);
        self.part_event(out, "response.content_part.done", index, content_index);
    }

    fn tool_fragment(
        &mut self,
        out: &mut Vec<u8>,
        call: oa::ToolCallDelta<'_>,
    ) -> Result<(), TranslateError> {
        let f = call.function.unwrap_or_default();
        let args = f.arguments.as_deref().unwrap_or_default();
        if let Open::Call(index, chat_index) = self.open {
            if chat_index == call.index {
                if let Some(Item::Call { arguments, .. }) =
                    self.slots.get_mut(index).map(|s| &mut s.item)
                {
                    arguments.push_str(args);
                }
                self.arguments_delta(out, index, args);
                return Ok(());
            }
            if let Some(h) = self.held.iter_mut().find(|h| h.chat_index == call.index) {
                h.arguments.push_str(args);
                // Some OpenAI-compatible servers repeat id and name on every fragment.
                if h.name.is_empty() {
                    h.name = f.name.as_deref().unwrap_or_default().to_owned();
                }
                if h.call_id.is_empty() {
                    h.call_id = call.id.as_deref().unwrap_or_default().to_owned();
                }
                return Ok(());
            }
        }
        let seen = self
            .slots
            .iter()
            .any(|s| matches!(s.item, Item::Call { chat_index, .. } if chat_index == call.index));
        if seen {
            return Err(TranslateError::invalid(
                "OpenAI stream chunk",
                format!("tool call {} continued after it ended", call.index),
            ));
        }
        let held = HeldCall {
            chat_index: call.index,
            call_id: call.id.as_deref().unwrap_or_default().to_owned(),
            name: f.name.as_deref().unwrap_or_default().to_owned(),
            arguments: args.to_owned(),
        };
        if let Open::Call(index, _) = self.open {
            let complete = match self.slots.get(index).map(|s| &s.item) {
                Some(Item::Call { arguments, .. }) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(arguments).is_ok()
                }
                _ => true,
            };
            if !complete {
                self.held.push(held);
                return Ok(());
            }
        }
        self.close_open(out, "completed");
        let index = self.open_call(out, held);
        self.open = Open::Call(index, call.index);
        Ok(())
    }

    /// Adds a function call item and streams the arguments it has so far.
    fn open_call(&mut self, out: &mut Vec<u8>, call: HeldCall) -> usize {
        let index = self.add_item(
            out,
            Item::Call {
                id: function_call_item_id(&call.call_id),
                call_id: call.call_id,
                name: call.name,
                arguments: String::new(),
                chat_index: call.chat_index,
            },
        );
        if let Some(Item::Call { arguments, .. }) = self.slots.get_mut(index).map(|s| &mut s.item) {
            arguments.push_str(&call.arguments);
        }
        self.arguments_delta(out, index, &call.arguments);
        index
    }

    fn arguments_delta(&mut self, out: &mut Vec<u8>, index: usize, delta: &str) {
        if delta.is_empty() {
            return;
        }
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        begin(&mut self.seq, out, "response.function_call_arguments.delta");
        item_ref(out, slot.id(), index);
        out.extend_from_slice(b",\"delta\":");
        json_str(out, delta);
        end(out);
    }

    fn close_call(&mut self, out: &mut Vec<u8>, index: usize, status: &'static str) {
        if let Some(Item::Call {
            id,
            name,
            arguments,
            ..
        }) = self.slots.get(index).map(|s| &s.item)
        {
            begin(&mut self.seq, out, "response.function_call_arguments.done");
            item_ref(out, id, index);
            out.extend_from_slice(b",\"name\":");
            json_str(out, name);
            out.extend_from_slice(b",\"arguments\":");
            json_str(out, arguments);
            end(out);
        }
        self.item_done(out, index, status);
    }

    /// Closes the open item with `status`; after a live call, emits the held ones whole.
    fn close_open(&mut self, out: &mut Vec<u8>, status: &'static str) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Reasoning(index) => {
                if let Some(Item::Reasoning { id, text }) = self.slots.get(index).map(|s| &s.item) {
                    begin(&mut self.seq, out, "response.reasoning_text.done");
                    item_ref(out, id, index);
                    out.extend_from_slice(b",\"content_index\":0,\"text\":");
                    json_str(out, text);
                    end(out);
                }
                self.part_event(out, "response.content_part.done", index, 0);
                self.item_done(out, index, status);
            }
            Open::Message(index) => {
                let count = match self.slots.get(index).map(|s| &s.item) {
                    Some(Item::Message { parts, .. }) => parts.len(),
                    _ => 0,
                };
                if count > 0 {
                    self.part_done(out, index, count - 1);
                }
                self.item_done(out, index, status);
            }
            Open::Call(index, _) => {
                self.close_call(out, index, status);
                for call in std::mem::take(&mut self.held) {
                    let index = self.open_call(out, call);
                    self.close_call(out, index, status);
                }
            }
        }
    }

    /// `response.completed` / `response.incomplete` at the end of a finished stream, or the
    /// failure of one that ended without a finish reason.
    fn complete(&mut self, out: &mut Vec<u8>) {
        let Some(stop) = self.stop else {
            let err = oa::ErrorBody {
                message: "upstream stream ended before completion".into(),
                kind: Some("server_error".into()),
                ..oa::ErrorBody::default()
            };
            self.fail(out, &err);
            return;
        };
        if !self.started {
            self.start(out, "", None);
        }
        self.close_open(out, "completed");
        self.finished = true;
        let (status, incomplete) = status_for(Some(stop));
        let response = self.response(status, incomplete, None, "completed");
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        begin(&mut self.seq, out, kind);
        out.extend_from_slice(b",\"response\":");
        json_value(out, &response);
        end(out);
    }

    /// An `error` event, then `response.failed` with what was produced so far.
    fn fail(&mut self, out: &mut Vec<u8>, err: &oa::ErrorBody) {
        if !self.started {
            self.start(out, "", None);
        }
        self.finished = true;
        let code = match &err.code {
            Some(serde_json::Value::String(c)) => c.clone(),
            _ => err.kind.clone().unwrap_or_else(|| "server_error".into()),
        };
        begin(&mut self.seq, out, "error");
        out.extend_from_slice(b",\"code\":");
        json_str(out, &code);
        out.extend_from_slice(b",\"message\":");
        json_str(out, &err.message);
        out.extend_from_slice(b",\"param\":");
        match &err.param {
            Some(serde_json::Value::String(p)) => json_str(out, p),
            _ => out.extend_from_slice(b"null"),
        }
        end(out);
        // `response.error.code` is an enumeration in the API reference.
        let rate_limited = [Some(code.as_str()), err.kind.as_deref()]
            .into_iter()
            .flatten()
            .any(|c| c.starts_with("rate_limit"));
        let error = rt::ResponseError {
            code: if rate_limited {
                "rate_limit_exceeded".into()
            } else {
                "server_error".into()
            },
            message: err.message.clone(),
        };
        self.open = Open::None;
        let response = self.response("failed", None, Some(error), "incomplete");
        begin(&mut self.seq, out, "response.failed");
        out.extend_from_slice(b",\"response\":");
        json_value(out, &response);
        end(out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Client SSE text → `[(event name, data)]`, checking the framing of every event.
    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with("\n\n"));
        text.split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let mut lines = b.lines();
                let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
                let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
                assert!(lines.next().is_none());
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(data["type"], name, "type matches the event name");
                (name.to_owned(), data)
            })
            .collect()
    }

    fn names(evs: &[(String, Value)]) -> Vec<&str> {
        evs.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"id": "chatcmpl-c1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
        .unwrap()
    }

    fn usage_chunk() -> Vec<u8> {
        serde_json::to_vec(
            &json!({"id": "chatcmpl-c1", "object": "chat.completion.chunk",
            "created": 1700000000, "model": "m", "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 2},
                "completion_tokens_details": {"reasoning_tokens": 1}}}),
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

    fn run(s: &mut ChatToResponsesStream, chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            s.push_event(None, c, &mut out).unwrap();
        }
        out
    }

    fn assert_sequence_numbers(evs: &[(String, Value)]) {
        for (i, (_, d)) in evs.iter().enumerate() {
            assert_eq!(d["sequence_number"], i as u64);
        }
    }

    #[test]
    fn text_stream_follows_openai_event_order_with_usage() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(json!({"role": "assistant", "content": ""}), None),
                chunk(json!({"content": "Hel"}), None),
                chunk(json!({"content": "lo"}), None),
                chunk(json!({}), Some("stop")),
                usage_chunk(),
                b"[DONE]".to_vec(),
            ],
        );
        let evs = events(&out);
        assert_eq!(
            names(&evs),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_sequence_numbers(&evs);
        let created = &evs[0].1["response"];
        assert_eq!(created["id"], "resp_c1");
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));
        assert_eq!(created["model"], "alias");
        assert_eq!(created["created_at"], 1700000000);
        assert_eq!(
            evs[2].1["item"],
            json!({"type": "message", "id": "msg_c1", "status": "in_progress", "role": "assistant", "content": []})
        );
        assert_eq!(
            evs[3].1,
            json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_c1",
                "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        );
        assert_eq!(
            evs[4].1,
            json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_c1",
                "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []})
        );
        assert_eq!(evs[6].1["text"], "Hello");
        assert_eq!(evs[7].1["part"]["text"], "Hello");
        assert_eq!(evs[8].1["item"]["status"], "completed");
        let done = &evs[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"], json!([evs[8].1["item"]]));
        assert_eq!(
            done["usage"],
            json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
                "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 17})
        );
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 2,
                cache_creation_tokens: 0
            })
        );
        assert_eq!(s.stop_reason(), Some(FinishReason::EndTurn));
        let mut more = Vec::new();
        s.push_event(None, &chunk(json!({"content": "x"}), None), &mut more)
            .unwrap();
        s.finish(&mut more);
        assert!(more.is_empty(), "nothing after the end");
    }

    #[test]
    fn parallel_tool_calls_become_function_call_items_with_their_output_index() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(json!({"role": "assistant", "content": "Checking."}), None),
                chunk(tc(0, Some("call_a"), ""), None),
                chunk(tc(0, None, "{\"x\":"), None),
                chunk(tc(0, None, "1}"), None),
                chunk(tc(1, Some("call_b"), "{\"y\":2}"), None),
                chunk(json!({}), Some("tool_calls")),
                b"[DONE]".to_vec(),
            ],
        );
        let evs = events(&out);
        assert_eq!(
            names(&evs),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_sequence_numbers(&evs);
        assert_eq!(
            evs[8].1["item"],
            json!({"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "f0",
                "arguments": "", "status": "in_progress"})
        );
        assert_eq!(evs[8].1["output_index"], 1);
        assert_eq!(
            evs[9].1,
            json!({"type": "response.function_call_arguments.delta", "sequence_number": 9,
                "item_id": "fc_a", "output_index": 1, "delta": "{\"x\":"})
        );
        assert_eq!(
            evs[11].1,
            json!({"type": "response.function_call_arguments.done", "sequence_number": 11,
                "item_id": "fc_a", "output_index": 1, "name": "f0", "arguments": "{\"x\":1}"})
        );
        assert_eq!(evs[13].1["output_index"], 2);
        assert_eq!(evs[13].1["item"]["call_id"], "call_b");
        assert_eq!(evs[15].1["arguments"], "{\"y\":2}");
        let out = &evs[17].1["response"]["output"];
        assert_eq!(out.as_array().unwrap().len(), 3);
        assert_eq!(out[1]["arguments"], "{\"x\":1}");
        assert_eq!(out[2]["status"], "completed");
        assert_eq!(s.stop_reason(), Some(FinishReason::ToolUse));
    }

    #[test]
    fn interleaved_tool_calls_are_held_back_not_overlapped() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(tc(0, Some("call_a"), "{\"x\":"), None),
                chunk(tc(1, Some("call_b"), "{\"y\":"), None),
                chunk(tc(0, None, "1}"), None),
                chunk(tc(1, None, "2}"), None),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        let mut out = out;
        s.finish(&mut out);
        let evs = events(&out);
        let items: Vec<(u64, String)> = evs
            .iter()
            .filter(|(n, _)| n == "response.output_item.done")
            .map(|(_, d)| {
                (
                    d["output_index"].as_u64().unwrap(),
                    d["item"]["arguments"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            items,
            [(0, "{\"x\":1}".to_owned()), (1, "{\"y\":2}".to_owned())]
        );
        // Every delta belongs to the one item open at the time.
        let mut open: Option<u64> = None;
        for (n, d) in &evs {
            match n.as_str() {
                "response.output_item.added" => {
                    assert!(open.is_none());
                    open = d["output_index"].as_u64();
                }
                "response.function_call_arguments.delta" => {
                    assert_eq!(open, d["output_index"].as_u64())
                }
                "response.output_item.done" => open = None,
                _ => {}
            }
        }
        assert_eq!(evs.last().unwrap().0, "response.completed");
    }

    #[test]
    fn reasoning_content_becomes_a_reasoning_item_before_the_message() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(json!({"reasoning_content": "hm"}), None),
                chunk(json!({"reasoning_content": "m"}), None),
                chunk(json!({"content": "ok"}), Some("stop")),
                b"[DONE]".to_vec(),
            ],
        );
        let evs = events(&out);
        assert_eq!(
            names(&evs)[2..9],
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.content_part.done",
                "response.output_item.done",
            ]
        );
        assert_eq!(
            evs[2].1["item"],
            json!({"type": "reasoning", "id": "rs_c1", "summary": [],
                "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"})
        );
        assert_eq!(
            evs[3].1["part"],
            json!({"type": "reasoning_text", "text": ""})
        );
        assert_eq!(evs[6].1["text"], "hmm");
        assert_eq!(evs[9].1["output_index"], 1);
        let output = &evs.last().unwrap().1["response"]["output"];
        assert_eq!(output[0]["content"][0]["text"], "hmm");
        assert_eq!(output[1]["content"][0]["text"], "ok");
    }

    #[test]
    fn length_ends_with_response_incomplete() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(json!({"content": "abc"}), None),
                chunk(json!({}), Some("length")),
                usage_chunk(),
                b"[DONE]".to_vec(),
            ],
        );
        let evs = events(&out);
        let (name, last) = evs.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(last["response"]["usage"]["output_tokens"], 5);
    }

    #[test]
    fn refusal_streams_as_a_refusal_part() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(json!({"refusal": "No."}), Some("stop")),
                b"[DONE]".to_vec(),
            ],
        );
        let evs = events(&out);
        assert_eq!(evs[3].1["part"], json!({"type": "refusal", "refusal": ""}));
        assert_eq!(evs[4].0, "response.refusal.delta");
        assert_eq!(evs[5].0, "response.refusal.done");
        assert_eq!(evs[5].1["refusal"], "No.");
        assert_eq!(
            evs.last().unwrap().1["response"]["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "No."}])
        );
    }

    #[test]
    fn error_mid_stream_gives_error_then_response_failed() {
        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[
                chunk(json!({"content": "par"}), None),
                br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.to_vec(),
            ],
        );
        let evs = events(&out);
        assert_eq!(names(&evs)[evs.len() - 2..], ["error", "response.failed"]);
        assert_sequence_numbers(&evs);
        let err = &evs[evs.len() - 2].1;
        assert_eq!(err["code"], "rate_limit_exceeded");
        assert_eq!(err["message"], "Rate limit reached");
        assert_eq!(err["param"], Value::Null);
        let failed = &evs.last().unwrap().1["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(
            failed["error"],
            json!({"code": "rate_limit_exceeded", "message": "Rate limit reached"})
        );
        assert_eq!(failed["output"][0]["status"], "incomplete");
        assert_eq!(failed["output"][0]["content"][0]["text"], "par");
        let mut more = Vec::new();
        s.push_event(None, b"[DONE]", &mut more).unwrap();
        assert!(more.is_empty());
    }

    #[test]
    fn stream_cut_short_fails_and_an_early_error_still_starts_the_response() {
        let mut s = ChatToResponsesStream::new("alias");
        let mut out = run(&mut s, &[chunk(json!({"content": "par"}), None)]);
        s.finish(&mut out);
        let evs = events(&out);
        assert_eq!(evs[evs.len() - 2].1["code"], "server_error");
        assert_eq!(
            evs.last().unwrap().1["response"]["error"]["code"],
            "server_error"
        );

        let mut s = ChatToResponsesStream::new("alias");
        let out = run(&mut s, &[b"[DONE]".to_vec()]);
        assert_eq!(
            names(&events(&out)),
            [
                "response.created",
                "response.in_progress",
                "error",
                "response.failed"
            ]
        );

        let mut s = ChatToResponsesStream::new("alias");
        let out = run(
            &mut s,
            &[br#"{"error":{"message":"boom","type":"server_error"}}"#.to_vec()],
        );
        let evs = events(&out);
        assert_eq!(evs[0].0, "response.created");
        assert_eq!(evs[2].1["code"], "server_error");
    }

    #[test]
    fn finish_without_done_completes_after_a_finish_reason() {
        let mut s = ChatToResponsesStream::new("alias");
        let mut out = run(&mut s, &[chunk(json!({"content": "a"}), Some("stop"))]);
        s.finish(&mut out);
        assert_eq!(events(&out).last().unwrap().0, "response.completed");
    }

    #[test]
    fn echo_fields_reach_the_streamed_response() {
        let echo = ResponsesEcho::from_request(
            br#"{"model":"m","input":"x","instructions":"Be brief.","tool_choice":"none","parallel_tool_calls":false}"#,
        );
        let mut s = ChatToResponsesStream::with_echo("alias", echo);
        let out = run(&mut s, &[chunk(json!({"content": "a"}), Some("stop"))]);
        let evs = events(&out);
        let r = &evs[0].1["response"];
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["tool_choice"], "none");
        assert_eq!(r["parallel_tool_calls"], false);
    }

    #[test]
    fn bad_chunks_are_invalid() {
        let mut s = ChatToResponsesStream::new("alias");
        let mut out = Vec::new();
        assert!(matches!(
            s.push_event(None, b"{not json", &mut out),
            Err(TranslateError::Invalid { .. })
        ));
    }
}
