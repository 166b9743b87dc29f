//! Guardrails on a streamed answer, event by event, without buffering it: the text deltas
//! of each content block or tool call (Chat `delta.content` and `tool_calls[].function.
//! arguments`, Messages `text_delta`/`input_json_delta`, Responses `output_text.delta` and
//! `function_call_arguments.delta`) go through one [`StreamScanner`] per policy, so an
//! event carries only text that can no longer become part of a match (redacted); the
//! held-back tail comes out when more arrives or when its block ends. Whole texts in other
//! events (a Responses `.done` or `response.completed`) are scanned as JSON bodies.
//!
//! [`GuardedStream`] wraps the stream translator (or stands in for passthrough) as the
//! relay's [`StreamTranslator`], working on events already in the client's format. A
//! blocking match ends the stream with an error event naming the policy and rule.
//!
//! Events are read in place: one pass over an event's bytes finds the spans of the fields
//! that matter (type, indexes, the delta strings), and what the scanners release is spliced
//! into the original bytes as a JSON string; the rest of the event goes on as it came, and
//! an event whose text comes out unchanged is forwarded untouched. Buffers are reused from
//! event to event. An event the reader cannot follow (not well-formed, or a field given twice)
//! is scanned whole, as a JSON body.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write as _;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use super::body::{scan_body, Hit};
use super::detector::Detector;
use super::policy::GuardrailPolicy;
use super::stream::StreamScanner;
use crate::api::{
    find_top_level_value, for_each_element, for_each_member, key_is, skip_ws, unescape_into,
    write_string, JsonSpan,
};
use crate::config::GuardrailAction;
use crate::translate::{
    for_each_event, stream_error_event, write_error_event, write_event, write_event_head,
    StreamErrorEvent, StreamTranslator, TranslateError,
};
use crate::wire::{FinishReason, Usage, WireApi};

/// Most text channels (content blocks, tool calls) one stream may open: indexes come from
/// the provider.
const MAX_CHANNELS: usize = 256;

/// Where a delta belongs: (choice or output index, content or tool index, kind).
type ChannelKey = (u64, u64, u8);
const TEXT: u8 = 0;
const TOOL: u8 = 1;

/// One text channel: a scanner per policy, in policy order.
struct Channel {
    key: ChannelKey,
    scanners: Vec<StreamScanner<Arc<Detector>>>,
}

/// Why a stream was stopped.
struct Blocked(Hit);

/// The policies, the open channels and what fired.
struct Channels {
    policies: Vec<Arc<GuardrailPolicy>>,
    open: Vec<Channel>,
    hits: Rc<RefCell<Vec<Hit>>>,
    /// The text between two policies' scanners (reused).
    chain: [String; 2],
}

impl Channels {
    /// Pushes a delta through the channel's scanners; appends the text to send now to `out`.
    fn push(
        &mut self,
        key: ChannelKey,
        delta: &str,
        field: &str,
        out: &mut String,
    ) -> Result<(), Blocked> {
        self.pass(key, Some(delta), field, out)
    }

    /// Ends a channel; appends its held-back text to `out`.
    fn flush(&mut self, key: ChannelKey, field: &str, out: &mut String) -> Result<(), Blocked> {
        if !self.open.iter().any(|c| c.key == key) {
            return Ok(());
        }
        let result = self.pass(key, None, field, out);
        self.open.retain(|c| c.key != key);
        result
    }

    /// `delta` (or, with `None`, the end of the channel) through each policy's scanner in
    /// turn: what one releases goes through the next, and what the last releases to `out`.
    fn pass(
        &mut self,
        key: ChannelKey,
        delta: Option<&str>,
        field: &str,
        out: &mut String,
    ) -> Result<(), Blocked> {
        let Channels {
            policies,
            open,
            hits,
            chain,
        } = self;
        let channel = match open.iter().position(|c| c.key == key) {
            Some(at) => open.get_mut(at),
            None if open.len() < MAX_CHANNELS && !policies.is_empty() => {
                let scanners = policies
                    .iter()
                    .map(|p| match p.action {
                        GuardrailAction::Redact => StreamScanner::new(Arc::clone(&p.detector)),
                        _ => StreamScanner::detect_only(Arc::clone(&p.detector)),
                    })
                    .collect();
                open.push(Channel { key, scanners });
                open.last_mut()
            }
            None => None,
        };
        let Some(channel) = channel else {
            out.push_str(delta.unwrap_or_default());
            return Ok(());
        };
        let [carried, next] = chain;
        carried.clear();
        let last = channel.scanners.len().saturating_sub(1);
        let steps = channel.scanners.iter_mut().zip(policies.iter()).enumerate();
        for (j, (scanner, policy)) in steps {
            next.clear();
            let text = if j == 0 {
                delta.unwrap_or_default()
            } else {
                carried.as_str()
            };
            let to: &mut String = if j == last { &mut *out } else { &mut *next };
            let mut found = scanner.push(text, to);
            if delta.is_none() {
                found.extend(scanner.finish(to));
            }
            for f in &found {
                let hit = Hit {
                    policy: Arc::clone(&policy.name),
                    rule: policy
                        .detector
                        .rule(f.rule)
                        .map_or_else(String::new, |r| r.name().to_string()),
                    action: policy.action,
                    field: field.to_string(),
                };
                hits.borrow_mut().push(hit.clone());
                if policy.action == GuardrailAction::Block {
                    return Err(Blocked(hit));
                }
            }
            std::mem::swap(carried, next);
        }
        Ok(())
    }
}

/// Changes to one event's bytes: each replaces `start..end` (empty for an insertion) with a
/// range of `bytes`.
#[derive(Default)]
struct Edits {
    list: Vec<(usize, usize, Range<usize>)>,
    bytes: Vec<u8>,
}

impl Edits {
    fn clear(&mut self) {
        self.list.clear();
        self.bytes.clear();
    }

    /// Replaces `span` with `text` as a JSON string.
    fn string(&mut self, span: JsonSpan, text: &str) {
        let from = self.bytes.len();
        write_string(text, &mut self.bytes);
        self.list
            .push((span.start, span.end, from..self.bytes.len()));
    }

    /// Replaces `start..end` with what `write` writes.
    fn raw(&mut self, start: usize, end: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let from = self.bytes.len();
        write(&mut self.bytes);
        self.list.push((start, end, from..self.bytes.len()));
    }

    /// Writes `data` with the edits applied (in document order; insertions at one place in
    /// the order they were made) to `out`.
    fn apply(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.list.sort_by_key(|e| e.0);
        let mut at = 0;
        for (start, end, new) in &self.list {
            let (Some(before), Some(new)) = (data.get(at..*start), self.bytes.get(new.clone()))
            else {
                continue;
            };
            out.extend_from_slice(before);
            out.extend_from_slice(new);
            at = *end;
        }
        out.extend_from_slice(data.get(at..).unwrap_or_default());
    }
}

/// Where a Chat choice's fields sit in its event.
#[derive(Clone, Copy)]
struct ChoiceSpans {
    /// The choice object.
    object: JsonSpan,
    index: u64,
    /// `delta`, whatever its type.
    delta: Option<JsonSpan>,
    /// `delta.content`, whatever its type.
    content: Option<JsonSpan>,
    /// `delta.tool_calls`, whatever its type.
    tool_calls: Option<JsonSpan>,
    /// The choice's tool calls with arguments, in the event's list of calls.
    calls: (usize, usize),
    /// `finish_reason` is set: the choice's text ends with this event.
    finish: bool,
}

/// One tool call's arguments in a Chat event.
#[derive(Clone, Copy)]
struct CallSpans {
    index: u64,
    arguments: JsonSpan,
}

/// The top-level fields a Messages or Responses event is guarded by.
#[derive(Default, Clone, Copy)]
struct TopSpans {
    kind: Option<JsonSpan>,
    index: Option<JsonSpan>,
    output_index: Option<JsonSpan>,
    content_index: Option<JsonSpan>,
    delta: Option<JsonSpan>,
    sequence_number: Option<JsonSpan>,
}

/// The relay's translator with the response guardrails applied to what it produces.
pub struct GuardedStream {
    inner: Option<Box<dyn StreamTranslator>>,
    client: WireApi,
    channels: Channels,
    translated: Vec<u8>,
    scratch: Vec<u8>,
    /// A text read from the event, and what the scanners release (reused).
    text: String,
    released: String,
    /// The current event's changes (reused).
    edits: Edits,
    /// The current Chat event's choices and tool calls (reused).
    choices: Vec<ChoiceSpans>,
    calls: Vec<CallSpans>,
    sequence: u64,
    blocked: bool,
    /// The client's terminal event went out (`[DONE]`, `message_stop`, `response.completed`).
    ended: bool,
}

impl GuardedStream {
    /// Guards the events `inner` writes (or, without it, the provider's own events, already
    /// in the client's format `client`) with `policies`; rules that fire go to `hits`.
    pub fn new(
        inner: Option<Box<dyn StreamTranslator>>,
        client: WireApi,
        policies: Vec<Arc<GuardrailPolicy>>,
        hits: Rc<RefCell<Vec<Hit>>>,
    ) -> Self {
        Self {
            inner,
            client,
            channels: Channels {
                policies,
                open: Vec::new(),
                hits,
                chain: Default::default(),
            },
            translated: Vec::new(),
            scratch: Vec::new(),
            text: String::new(),
            released: String::new(),
            edits: Edits::default(),
            choices: Vec::new(),
            calls: Vec::new(),
            sequence: 0,
            blocked: false,
            ended: false,
        }
    }

    /// Guards one event in the client's format and writes it (and any flushed text) to `out`.
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        if data.trim_ascii() == b"[DONE]" {
            self.ended = true;
            write_event(out, name, data);
            return Ok(());
        }
        self.edits.clear();
        match self.client {
            WireApi::Messages => self.messages_event(name, data, out),
            WireApi::Responses => self.responses_event(name, data, out),
            _ => self.chat_event(name, data, out),
        }
    }

    /// Scans an event that carries no delta as a whole JSON body, and writes it (redacted if
    /// a policy redacted something). Also what becomes of an event the reader cannot follow:
    /// if it is not JSON at all, nothing is found and it goes on as it came.
    fn whole(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        let scan = scan_body(&self.channels.policies, data);
        if !scan.hits.is_empty() {
            self.channels.hits.borrow_mut().extend(scan.hits);
        }
        if let Some(hit) = scan.blocked {
            return Err(Blocked(hit));
        }
        let data = scan.redacted.as_deref().unwrap_or(data);
        self.edits.clear();
        let sequence = match self.client {
            WireApi::Responses => find_top_level_value(data, "sequence_number"),
            _ => None,
        };
        self.write(name, data, sequence, out);
        Ok(())
    }

    /// Writes the event with the edits made so far (and, if it has a sequence number at
    /// `sequence`, the stream's next one).
    fn write(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        sequence: Option<JsonSpan>,
        out: &mut Vec<u8>,
    ) {
        if let Some(span) = sequence {
            self.renumber(data, span);
        }
        write_event_head(out, name);
        if self.edits.list.is_empty() {
            out.extend_from_slice(data);
        } else {
            self.edits.apply(data, out);
        }
        out.extend_from_slice(b"\n\n");
    }

    /// Gives the event at hand the stream's next sequence number (Responses), so they stay
    /// in order when the guard adds events.
    fn renumber(&mut self, data: &[u8], span: JsonSpan) {
        let n = self.sequence;
        self.sequence += 1;
        if span.slice(data).and_then(parse_u64) != Some(n) {
            self.edits.raw(span.start, span.end, |b| {
                let _ = write!(b, "{n}");
            });
        }
    }

    /// Pushes the delta string at `span` through `key`'s channel and records the edit if
    /// what comes out differs; the released text is left in `self.released`.
    fn delta(
        &mut self,
        data: &[u8],
        span: JsonSpan,
        key: ChannelKey,
        field: &str,
    ) -> Result<(), Blocked> {
        self.released.clear();
        self.text.clear();
        if !decode_into(data, span, &mut self.text) {
            return Ok(());
        }
        self.channels
            .push(key, &self.text, field, &mut self.released)?;
        if self.released != self.text {
            self.edits.string(span, &self.released);
        }
        Ok(())
    }
}

impl GuardedStream {
    fn chat_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        let mut choices = std::mem::take(&mut self.choices);
        let mut calls = std::mem::take(&mut self.calls);
        let result = match read_chat(data, &mut choices, &mut calls) {
            Some(()) => self.chat_choices(name, data, &choices, &calls, out),
            None => self.whole(name, data, out),
        };
        self.choices = choices;
        self.calls = calls;
        result
    }

    fn chat_choices(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        choices: &[ChoiceSpans],
        calls: &[CallSpans],
        out: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        for choice in choices {
            let i = choice.index;
            let content = choice.content.filter(|s| is_string(data, *s));
            self.released.clear();
            if let Some(span) = content {
                self.delta(data, span, (i, 0, TEXT), "content")?;
            }
            // The members a finished choice adds to its delta (`"content":…`,
            // `"tool_calls":[…]`); once per finished choice, so allocating is fine.
            let mut members = Vec::new();
            if choice.finish {
                self.finish_content(choice, &mut members)?;
            }
            let (from, to) = choice.calls;
            for call in calls.get(from..to).unwrap_or_default() {
                self.delta(data, call.arguments, (i, call.index, TOOL), "arguments")?;
            }
            if choice.finish {
                self.finish_tools(data, choice, &mut members)?;
                self.add_to_delta(data, choice, &members);
            }
        }
        self.write(name, data, None, out);
        Ok(())
    }

    /// A finished choice's held-back text rides on its last chunk, after what the chunk
    /// released (in `self.released`).
    fn finish_content(
        &mut self,
        choice: &ChoiceSpans,
        members: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        let before = self.released.len();
        self.channels
            .flush((choice.index, 0, TEXT), "content", &mut self.released)?;
        if self.released.len() == before {
            return Ok(());
        }
        match choice.content {
            Some(span) => {
                // replaces the edit the chunk's own text may have made
                self.edits.list.retain(|e| e.0 != span.start);
                self.edits.string(span, &self.released);
            }
            None => {
                members.extend_from_slice(b"\"content\":");
                write_string(&self.released, members);
            }
        }
        Ok(())
    }

    /// Each of a finished choice's tool calls with held-back arguments gets one more entry
    /// in `delta.tool_calls` with them.
    fn finish_tools(
        &mut self,
        data: &[u8],
        choice: &ChoiceSpans,
        members: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        let tools: Vec<ChannelKey> = self
            .channels
            .open
            .iter()
            .map(|c| c.key)
            .filter(|(ci, _, kind)| *ci == choice.index && *kind == TOOL)
            .collect();
        let mut list = Vec::new();
        for key in tools {
            let mut rest = String::new();
            self.channels.flush(key, "arguments", &mut rest)?;
            if rest.is_empty() {
                continue;
            }
            if !list.is_empty() {
                list.push(b',');
            }
            let _ = write!(list, "{{\"index\":{},\"function\":{{\"arguments\":", key.1);
            write_string(&rest, &mut list);
            list.extend_from_slice(b"}}");
        }
        if list.is_empty() {
            return Ok(());
        }
        match choice.tool_calls {
            Some(span) if data.get(span.start) == Some(&b'[') => {
                let comma = !is_empty_container(data, span);
                self.edits.raw(span.end - 1, span.end - 1, |b| {
                    if comma {
                        b.push(b',');
                    }
                    b.extend_from_slice(&list);
                });
            }
            Some(span) => self.edits.raw(span.start, span.end, |b| {
                b.push(b'[');
                b.extend_from_slice(&list);
                b.push(b']');
            }),
            None => {
                if !members.is_empty() {
                    members.push(b',');
                }
                members.extend_from_slice(b"\"tool_calls\":[");
                members.extend_from_slice(&list);
                members.push(b']');
            }
        }
        Ok(())
    }

    /// Adds `members` to the choice's delta object (made one if it is missing or not one).
    fn add_to_delta(&mut self, data: &[u8], choice: &ChoiceSpans, members: &[u8]) {
        if members.is_empty() {
            return;
        }
        match choice.delta {
            Some(span) if data.get(span.start) == Some(&b'{') => {
                let comma = !is_empty_container(data, span);
                self.edits.raw(span.end - 1, span.end - 1, |b| {
                    if comma {
                        b.push(b',');
                    }
                    b.extend_from_slice(members);
                });
            }
            Some(span) => self.edits.raw(span.start, span.end, |b| {
                b.push(b'{');
                b.extend_from_slice(members);
                b.push(b'}');
            }),
            None => {
                let at = choice.object.end - 1;
                let comma = !is_empty_container(data, choice.object);
                self.edits.raw(at, at, |b| {
                    if comma {
                        b.push(b',');
                    }
                    b.extend_from_slice(b"\"delta\":{");
                    b.extend_from_slice(members);
                    b.push(b'}');
                });
            }
        }
    }
}

/// Reads where a Chat chunk's choices keep their texts; `None` when the event is not
/// well-formed or gives a field twice.
fn read_chat(
    data: &[u8],
    choices: &mut Vec<ChoiceSpans>,
    calls: &mut Vec<CallSpans>,
) -> Option<()> {
    choices.clear();
    calls.clear();
    let mut list = None;
    top_level(data, |key, value| {
        if key_is(key, "choices") {
            once(&mut list, value)?;
        }
        Some(())
    })?;
    let Some(list) = list.filter(|s| data.get(s.start) == Some(&b'[')) else {
        return Some(());
    };
    let mut pos = 0u64;
    for_each_element(data, list.start, |object| {
        if data.get(object.start) == Some(&b'{') {
            choices.push(read_choice(data, object, pos, calls)?);
        }
        pos += 1;
        Some(())
    })?;
    Some(())
}

fn read_choice(
    data: &[u8],
    object: JsonSpan,
    pos: u64,
    calls: &mut Vec<CallSpans>,
) -> Option<ChoiceSpans> {
    let mut choice = ChoiceSpans {
        object,
        index: pos,
        delta: None,
        content: None,
        tool_calls: None,
        calls: (calls.len(), calls.len()),
        finish: false,
    };
    let mut index = None;
    let mut finish = None;
    for_each_member(data, object.start, |key, value| {
        if key_is(key, "index") {
            once(&mut index, value)
        } else if key_is(key, "delta") {
            once(&mut choice.delta, value)
        } else if key_is(key, "finish_reason") {
            once(&mut finish, value)
        } else {
            Some(())
        }
    })?;
    if let Some(i) = index.and_then(|s| s.slice(data)).and_then(parse_u64) {
        choice.index = i;
    }
    choice.finish = finish
        .and_then(|s| s.slice(data))
        .is_some_and(|v| v != b"null");
    let Some(delta) = choice.delta.filter(|s| data.get(s.start) == Some(&b'{')) else {
        return Some(choice);
    };
    for_each_member(data, delta.start, |key, value| {
        if key_is(key, "content") {
            once(&mut choice.content, value)
        } else if key_is(key, "tool_calls") {
            once(&mut choice.tool_calls, value)
        } else {
            Some(())
        }
    })?;
    if let Some(list) = choice
        .tool_calls
        .filter(|s| data.get(s.start) == Some(&b'['))
    {
        for_each_element(data, list.start, |call| {
            if data.get(call.start) == Some(&b'{') {
                read_call(data, call, calls)?;
            }
            Some(())
        })?;
    }
    choice.calls.1 = calls.len();
    Some(choice)
}

/// A tool call's index and arguments (when they are a string).
fn read_call(data: &[u8], call: JsonSpan, calls: &mut Vec<CallSpans>) -> Option<()> {
    let (mut index, mut function) = (None, None);
    for_each_member(data, call.start, |key, value| {
        if key_is(key, "index") {
            once(&mut index, value)
        } else if key_is(key, "function") {
            once(&mut function, value)
        } else {
            Some(())
        }
    })?;
    let Some(function) = function.filter(|s| data.get(s.start) == Some(&b'{')) else {
        return Some(());
    };
    let mut arguments = None;
    for_each_member(data, function.start, |key, value| {
        if key_is(key, "arguments") {
            once(&mut arguments, value)?;
        }
        Some(())
    })?;
    if let Some(arguments) = arguments.filter(|s| is_string(data, *s)) {
        let index = index
            .and_then(|s| s.slice(data))
            .and_then(parse_u64)
            .unwrap_or(0);
        calls.push(CallSpans { index, arguments });
    }
    Some(())
}

impl GuardedStream {
    fn messages_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        let Some(top) = read_top(data) else {
            return self.whole(name, data, out);
        };
        let kind = top.kind.and_then(|s| str_value(data, s));
        let kind = kind.as_deref();
        if kind == Some("message_stop") {
            self.ended = true;
        }
        // Events are named by their JSON `type`.
        let name = kind.map(str::as_bytes);
        let index = top
            .index
            .and_then(|s| s.slice(data))
            .and_then(parse_u64)
            .unwrap_or(0);
        match kind.unwrap_or("") {
            "content_block_delta" => {
                let Some(delta) = read_block_delta(data, top.delta) else {
                    return self.whole(name, data, out);
                };
                if let Some((span, field, tag)) = delta {
                    self.delta(data, span, (index, 0, tag), field)?;
                }
            }
            "content_block_stop" => {
                // Each channel's held-back tail goes out as one more delta before the stop.
                for (tag, field, delta_type) in [
                    (TEXT, "text", "text_delta"),
                    (TOOL, "partial_json", "input_json_delta"),
                ] {
                    self.released.clear();
                    self.channels
                        .flush((index, 0, tag), field, &mut self.released)?;
                    if !self.released.is_empty() {
                        write_event_head(out, Some(b"content_block_delta"));
                        let _ = write!(
                            out,
                            "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{delta_type}\",\"{field}\":"
                        );
                        write_string(&self.released, out);
                        out.extend_from_slice(b"}}\n\n");
                    }
                }
            }
            "ping" | "message_delta" | "message_stop" => {}
            _ => return self.whole(name, data, out),
        }
        self.write(name, data, None, out);
        Ok(())
    }

    fn responses_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Blocked> {
        let Some(top) = read_top(data) else {
            return self.whole(name, data, out);
        };
        let kind = top.kind.and_then(|s| str_value(data, s));
        let kind = kind.as_deref().unwrap_or("");
        if matches!(
            kind,
            "response.completed" | "response.failed" | "response.incomplete"
        ) {
            self.ended = true;
        }
        // Events are named by their JSON `type`.
        let name = top.kind.is_some().then_some(kind.as_bytes());
        let index = |span: Option<JsonSpan>| {
            span.and_then(|s| s.slice(data))
                .and_then(parse_u64)
                .unwrap_or(0)
        };
        let (output, content) = (index(top.output_index), index(top.content_index));
        let (key, field) = match kind {
            "response.output_text.delta" | "response.output_text.done" => {
                ((output, content, TEXT), "text")
            }
            "response.function_call_arguments.delta" | "response.function_call_arguments.done" => {
                ((output, 0, TOOL), "arguments")
            }
            _ => return self.whole(name, data, out),
        };
        if kind.ends_with(".delta") {
            if let Some(span) = top.delta.filter(|s| is_string(data, *s)) {
                self.delta(data, span, key, field)?;
            }
            self.write(name, data, top.sequence_number, out);
            return Ok(());
        }
        // `.done`: the held-back tail goes out as one more delta, then the full text, scanned.
        self.released.clear();
        self.channels.flush(key, field, &mut self.released)?;
        if !self.released.is_empty() {
            self.tail_delta(data, kind, top.sequence_number.is_some(), out);
        }
        self.whole(name, data, out)
    }

    /// The `.delta` event that carries a held-back tail (in `self.released`) before the
    /// `.done` event in `data`: the same fields but the full text, and the next sequence
    /// number if the stream numbers its events.
    fn tail_delta(&mut self, data: &[u8], done_kind: &str, numbered: bool, out: &mut Vec<u8>) {
        let kind = done_kind.replace(".done", ".delta");
        write_event_head(out, Some(kind.as_bytes()));
        out.extend_from_slice(b"{\"type\":");
        write_string(&kind, out);
        let start = skip_ws(data, 0);
        let _ = for_each_member(data, start, |key, value| {
            let dropped = ["type", "text", "arguments", "delta", "sequence_number"]
                .iter()
                .any(|k| key_is(key, k));
            if !dropped {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key);
                out.extend_from_slice(b"\":");
                out.extend_from_slice(value.slice(data)?);
            }
            Some(())
        });
        out.extend_from_slice(b",\"delta\":");
        write_string(&self.released, out);
        if numbered {
            let _ = write!(out, ",\"sequence_number\":{}", self.sequence);
            self.sequence += 1;
        }
        out.extend_from_slice(b"}\n\n");
    }
}

/// Reads the top-level fields of a Messages or Responses event; `None` when the event is
/// not a well-formed object or gives one of them twice.
fn read_top(data: &[u8]) -> Option<TopSpans> {
    let mut top = TopSpans::default();
    top_level(data, |key, value| {
        let slot = if key_is(key, "type") {
            &mut top.kind
        } else if key_is(key, "index") {
            &mut top.index
        } else if key_is(key, "output_index") {
            &mut top.output_index
        } else if key_is(key, "content_index") {
            &mut top.content_index
        } else if key_is(key, "delta") {
            &mut top.delta
        } else if key_is(key, "sequence_number") {
            &mut top.sequence_number
        } else {
            return Some(());
        };
        once(slot, value)
    })?;
    Some(top)
}

/// The text of a Messages `content_block_delta`: its span, field and channel kind, when
/// the delta is text or tool input given as a string. `None` when the delta is malformed.
fn read_block_delta(
    data: &[u8],
    delta: Option<JsonSpan>,
) -> Option<Option<(JsonSpan, &'static str, u8)>> {
    let Some(delta) = delta.filter(|s| data.get(s.start) == Some(&b'{')) else {
        return Some(None);
    };
    let (mut kind, mut text, mut json) = (None, None, None);
    for_each_member(data, delta.start, |key, value| {
        if key_is(key, "type") {
            once(&mut kind, value)
        } else if key_is(key, "text") {
            once(&mut text, value)
        } else if key_is(key, "partial_json") {
            once(&mut json, value)
        } else {
            Some(())
        }
    })?;
    let kind = kind.and_then(|s| str_value(data, s));
    let (span, field, tag) = match kind.as_deref() {
        Some("text_delta") => (text, "text", TEXT),
        Some("input_json_delta") => (json, "partial_json", TOOL),
        _ => return Some(None),
    };
    Some(
        span.filter(|s| is_string(data, *s))
            .map(|s| (s, field, tag)),
    )
}

/// Calls `f` with each top-level member of the JSON object `data`; `None` when `data` is
/// not one well-formed object (or `f` says so).
fn top_level<'a>(data: &'a [u8], f: impl FnMut(&'a [u8], JsonSpan) -> Option<()>) -> Option<()> {
    let end = for_each_member(data, skip_ws(data, 0), f)?;
    (skip_ws(data, end) == data.len()).then_some(())
}

/// Sets `slot` to `value`, unless it was set: a field given twice is not followed.
fn once(slot: &mut Option<JsonSpan>, value: JsonSpan) -> Option<()> {
    match slot.replace(value) {
        None => Some(()),
        Some(_) => None,
    }
}

fn is_string(data: &[u8], span: JsonSpan) -> bool {
    data.get(span.start) == Some(&b'"')
}

/// Whether the object or array at `span` has no members.
fn is_empty_container(data: &[u8], span: JsonSpan) -> bool {
    skip_ws(data, span.start + 1) + 1 >= span.end
}

/// A JSON number that is a plain unsigned integer.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Appends the text of the string at `span` to `out`; false when it cannot be decoded.
fn decode_into(data: &[u8], span: JsonSpan, out: &mut String) -> bool {
    let inner = span
        .end
        .checked_sub(1)
        .and_then(|end| data.get(span.start + 1..end));
    inner.is_some_and(|inner| unescape_into(inner, out).is_some())
}

/// The text of the string at `span`: borrowed when it has no escapes.
fn str_value(data: &[u8], span: JsonSpan) -> Option<Cow<'_, str>> {
    if !is_string(data, span) {
        return None;
    }
    let inner = data.get(span.start + 1..span.end.checked_sub(1)?)?;
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    let mut text = String::new();
    unescape_into(inner, &mut text)?;
    Some(Cow::Owned(text))
}

/// The error event that ends a blocked stream, in the client's dialect.
fn blocked_event(out: &mut Vec<u8>, client: WireApi, hit: &Hit, sequence: u64) {
    let message = format!(
        "The model's answer was blocked by guardrail `{}`: rule `{}` matched in `{}`.",
        hit.policy, hit.rule, hit.field
    );
    let event = StreamErrorEvent {
        error_type: "invalid_request_error",
        code: "guardrail_blocked",
        message: &message,
        sequence,
    };
    write_error_event(out, client, &event);
}

impl StreamTranslator for GuardedStream {
    fn push_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.blocked {
            return Ok(());
        }
        let result = match self.inner.as_mut() {
            None => self.event(name, data, out),
            Some(inner) => {
                let mut translated = std::mem::take(&mut self.translated);
                translated.clear();
                inner.push_event(name, data, &mut translated)?;
                let mut scratch = std::mem::take(&mut self.scratch);
                let mut result = Ok(());
                let walked = for_each_event(&translated, &mut scratch, |n, d| {
                    if result.is_ok() {
                        result = self.event(n, d, out);
                    }
                    Ok(())
                });
                self.translated = translated;
                self.scratch = scratch;
                walked?;
                result
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(Blocked(hit)) => {
                self.blocked = true;
                blocked_event(out, self.client, &hit, self.sequence);
                Err(TranslateError::Invalid {
                    what: "stream",
                    reason: "blocked by a guardrail".into(),
                })
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.blocked {
            return;
        }
        match self.inner.as_mut() {
            Some(inner) => {
                let mut tail = Vec::new();
                inner.finish(&mut tail);
                let _ = self.push_event_bytes(&tail, out);
            }
            // A provider's own stream that ended before its terminal event: say so, as the
            // relay does for an unguarded stream.
            None if !self.ended => stream_error_event(out, self.client, "closed", self.sequence),
            None => {}
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.as_ref().and_then(|t| t.usage())
    }

    fn stop_reason(&self) -> Option<FinishReason> {
        self.inner.as_ref().and_then(|t| t.stop_reason())
    }
}

impl GuardedStream {
    /// Guards events already in the client's format (a translator's ending).
    fn push_event_bytes(&mut self, events: &[u8], out: &mut Vec<u8>) -> Result<(), TranslateError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut result = Ok(());
        let walked = for_each_event(events, &mut scratch, |n, d| {
            if result.is_ok() {
                result = self.event(n, d, out);
            }
            Ok(())
        });
        self.scratch = scratch;
        if let Err(Blocked(hit)) = result {
            self.blocked = true;
            blocked_event(out, self.client, &hit, self.sequence);
        }
        walked
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::string_slice)]
    use super::*;
    use crate::config::{GuardrailConfig, GuardrailSide};
    use serde_json::{json, Value};

    fn policy(name: &str, rules: &[&str], action: GuardrailAction) -> Arc<GuardrailPolicy> {
        let cfg = GuardrailConfig {
            rules: rules.iter().map(|r| r.to_string()).collect(),
            action,
            on: vec![GuardrailSide::Response],
            custom: Vec::new(),
        };
        Arc::new(GuardrailPolicy::compile(name, &cfg).unwrap())
    }

    /// Runs `events` (name, data) through a passthrough guard; returns the client's text
    /// (the deltas joined) per `extract`, the raw output and the hits.
    fn run(
        client: WireApi,
        policies: Vec<Arc<GuardrailPolicy>>,
        events: &[(Option<&str>, String)],
    ) -> (String, Vec<Hit>, bool) {
        let hits = Rc::new(RefCell::new(Vec::new()));
        let mut g = GuardedStream::new(None, client, policies, Rc::clone(&hits));
        let mut out = Vec::new();
        let mut ok = true;
        for (name, data) in events {
            if g.push_event(name.map(str::as_bytes), data.as_bytes(), &mut out)
                .is_err()
            {
                ok = false;
                break;
            }
        }
        if ok {
            g.finish(&mut out);
        }
        let h = hits.borrow().clone();
        (String::from_utf8(out).unwrap(), h, ok)
    }

    fn texts(client: WireApi, raw: &str) -> String {
        let mut joined = String::new();
        let mut scratch = Vec::new();
        for_each_event(raw.as_bytes(), &mut scratch, |_, d| {
            let Ok(v) = serde_json::from_slice::<Value>(d) else {
                return Ok(());
            };
            let piece = match client {
                WireApi::Messages => v.pointer("/delta/text").and_then(Value::as_str),
                WireApi::Responses => (v["type"] == "response.output_text.delta")
                    .then(|| v["delta"].as_str())
                    .flatten(),
                _ => v
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str),
            };
            joined.push_str(piece.unwrap_or(""));
            Ok(())
        })
        .unwrap();
        joined
    }

    const PIECES: [&str; 3] = ["Write to jane.d", "oe@exam", "ple.com today."];

    #[test]
    fn an_email_split_across_three_events_is_redacted_in_every_dialect() {
        let redact = || vec![policy("pii", &["email"], GuardrailAction::Redact)];
        let want = "Write to [REDACTED:email] today.";
        // Chat Completions
        let mut chat: Vec<(Option<&str>, String)> = PIECES
            .iter()
            .map(|p| (None, json!({"id": "c", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]}).to_string()))
            .collect();
        chat.push((
            None,
            json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                .to_string(),
        ));
        chat.push((None, "[DONE]".to_string()));
        let (out, hits, ok) = run(WireApi::Chat, redact(), &chat);
        assert!(ok);
        assert_eq!(texts(WireApi::Chat, &out), want);
        assert!(
            !out.contains("jane") && out.ends_with("data: [DONE]\n\n"),
            "{out}"
        );
        assert_eq!(hits.len(), 1);
        // Anthropic Messages
        let mut msgs: Vec<(Option<&str>, String)> = vec![(Some("content_block_start"), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string())];
        msgs.extend(PIECES.iter().map(|p| (Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}).to_string())));
        msgs.push((
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}).to_string(),
        ));
        msgs.push((
            Some("message_stop"),
            json!({"type": "message_stop"}).to_string(),
        ));
        let (out, _, _) = run(WireApi::Messages, redact(), &msgs);
        assert_eq!(texts(WireApi::Messages, &out), want);
        assert!(
            !out.contains("jane") && out.contains("event: message_stop"),
            "{out}"
        );
        // OpenAI Responses: sequence numbers stay in order with the extra delta.
        let mut resp: Vec<(Option<&str>, String)> = PIECES
            .iter()
            .enumerate()
            .map(|(i, p)| (Some("response.output_text.delta"), json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": p, "sequence_number": i}).to_string()))
            .collect();
        let full = PIECES.concat();
        resp.push((Some("response.output_text.done"), json!({"type": "response.output_text.done", "item_id": "m", "output_index": 0, "content_index": 0, "text": full, "sequence_number": 3}).to_string()));
        resp.push((Some("response.completed"), json!({"type": "response.completed", "sequence_number": 4, "response": {"output": [{"content": [{"type": "output_text", "text": full}]}]}}).to_string()));
        let (out, _, _) = run(WireApi::Responses, redact(), &resp);
        assert_eq!(texts(WireApi::Responses, &out), want);
        assert!(!out.contains("jane"), "{out}");
        let mut seq = Vec::new();
        let mut scratch = Vec::new();
        for_each_event(out.as_bytes(), &mut scratch, |_, d| {
            seq.push(
                serde_json::from_slice::<Value>(d).unwrap()["sequence_number"]
                    .as_u64()
                    .unwrap(),
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn a_block_ends_the_stream_with_an_error_event_and_tool_arguments_are_scanned() {
        let block = vec![policy(
            "no-secrets",
            &["aws_access_key"],
            GuardrailAction::Block,
        )];
        let args = ["{\"key\":\"AKIAQN", "RXK7ORD3HNG57Y\"}"];
        let events: Vec<(Option<&str>, String)> = args
            .iter()
            .map(|a| (None, json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}, "finish_reason": null}]}).to_string()))
            .collect();
        let (out, hits, ok) = run(WireApi::Chat, block, &events);
        assert!(!ok, "the block stops the stream");
        assert!(
            out.contains("\"code\":\"guardrail_blocked\"") && !out.contains("RXK7"),
            "{out}"
        );
        assert_eq!(
            (hits[0].rule.as_str(), hits[0].field.as_str()),
            ("aws_access_key", "arguments")
        );
    }

    #[test]
    fn a_stream_cut_short_ends_with_an_error_event() {
        let events = vec![(None, json!({"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": null}]}).to_string())];
        let (out, _, ok) = run(
            WireApi::Chat,
            vec![policy("pii", &["email"], GuardrailAction::Flag)],
            &events,
        );
        assert!(ok);
        assert!(out.contains("upstream_stream_interrupted"), "{out}");
    }

    /// The events of one text streamed in `pieces`, in `client`'s dialect, closed the way
    /// the dialect closes a block (Chat: a finishing chunk with an empty delta).
    fn events_of(client: WireApi, pieces: &[&str]) -> Vec<(Option<&'static str>, String)> {
        let mut events = Vec::new();
        match client {
            WireApi::Messages => {
                for p in pieces {
                    events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}).to_string()));
                }
                events.push((
                    Some("content_block_stop"),
                    r#"{"type":"content_block_stop","index":0}"#.to_string(),
                ));
                events.push((
                    Some("message_stop"),
                    r#"{"type":"message_stop"}"#.to_string(),
                ));
            }
            WireApi::Responses => {
                for (i, p) in pieces.iter().enumerate() {
                    events.push((Some("response.output_text.delta"), json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": p, "sequence_number": i}).to_string()));
                }
                let full = pieces.concat();
                events.push((Some("response.output_text.done"), json!({"type": "response.output_text.done", "item_id": "m", "output_index": 0, "content_index": 0, "text": full, "sequence_number": pieces.len()}).to_string()));
                events.push((
                    Some("response.completed"),
                    json!({"type": "response.completed", "sequence_number": pieces.len() + 1})
                        .to_string(),
                ));
            }
            _ => {
                for p in pieces {
                    events.push((None, json!({"id": "c", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]}).to_string()));
                }
                events.push((
                    None,
                    r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#
                        .to_string(),
                ));
                events.push((None, "[DONE]".to_string()));
            }
        }
        events
    }

    #[test]
    fn streamed_texts_in_random_pieces_come_out_as_the_whole_text_redacted() {
        let policies = vec![policy("all", &["secrets", "pii"], GuardrailAction::Redact)];
        let det = Arc::clone(&policies[0].detector);
        let mut rng = fastrand::Rng::with_seed(7);
        for text in crate::guardrails::samples::stream_texts() {
            let want = det.redact(&text, &det.find(&text));
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            for client in [WireApi::Chat, WireApi::Messages, WireApi::Responses] {
                let mut cuts: Vec<usize> =
                    (0..4).map(|_| bounds[rng.usize(..bounds.len())]).collect();
                cuts.push(0);
                cuts.push(text.len());
                cuts.sort_unstable();
                let pieces: Vec<&str> = cuts.windows(2).map(|w| &text[w[0]..w[1]]).collect();
                let (out, _, ok) = run(client, policies.clone(), &events_of(client, &pieces));
                assert!(ok);
                assert_eq!(texts(client, &out), want, "{client:?} {cuts:?}: {text}");
                // every event is still JSON
                let mut scratch = Vec::new();
                for_each_event(out.as_bytes(), &mut scratch, |_, d| {
                    assert!(
                        d == b"[DONE]" || serde_json::from_slice::<Value>(d).is_ok(),
                        "{}",
                        String::from_utf8_lossy(d)
                    );
                    Ok(())
                })
                .unwrap();
            }
        }
    }

    #[test]
    fn events_go_on_byte_for_byte_with_only_their_text_spliced() {
        let policies = || vec![policy("pii", &["email"], GuardrailAction::Redact)];
        // Released whole: the event goes out untouched.
        let chunk = r#"{"id":"c","object":"chat.completion.chunk","choices":[ {"index":0,"delta":{"content":"Hello world. "},"logprobs":null,"finish_reason":null} ],"usage":null}"#;
        let (out, _, _) = run(WireApi::Chat, policies(), &[(None, chunk.to_string())]);
        assert!(out.starts_with(&format!("data: {chunk}\n\n")), "{out}");
        // Part held back: only the string changes (escapes kept valid), the rest as it came.
        let chunk = r#"{"z":1,"choices":[{"delta":{"content":"Say \"hi\"\n to bob@exa"},"index":0}],"a":[]}"#;
        let (out, _, _) = run(WireApi::Chat, policies(), &[(None, chunk.to_string())]);
        let want =
            r#"{"z":1,"choices":[{"delta":{"content":"Say \"hi\"\n to "},"index":0}],"a":[]}"#;
        assert!(out.starts_with(&format!("data: {want}\n\n")), "{out}");
        // Messages and Responses events are named by their type; Responses renumbered.
        let e = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi. "}}"#;
        let (out, _, _) = run(WireApi::Messages, policies(), &[(Some("x"), e.to_string())]);
        assert!(
            out.starts_with(&format!("event: content_block_delta\ndata: {e}\n\n")),
            "{out}"
        );
        let e = r#"{"type":"response.output_text.delta","sequence_number":7,"output_index":0,"content_index":0,"delta":"Hi. "}"#;
        let (out, _, _) = run(WireApi::Responses, policies(), &[(None, e.to_string())]);
        let want = e.replace(":7,", ":0,");
        assert!(
            out.starts_with(&format!(
                "event: response.output_text.delta\ndata: {want}\n\n"
            )),
            "{out}"
        );
    }

    #[test]
    fn held_back_text_finds_a_place_in_any_finishing_chunk() {
        let policies = || vec![policy("pii", &["email"], GuardrailAction::Redact)];
        let open = |p: &str| {
            (
                None,
                json!({"choices": [{"index": 0, "delta": {"content": p}}]}).to_string(),
            )
        };
        let call = |a: &str| {
            (None, json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": a}}]}}]}).to_string())
        };
        let finishing = [
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":null,"role":"assistant"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":" ok"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[{"index":0,"delta":null,"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[]},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"x"}}]},"finish_reason":"stop"}]}"#,
        ];
        for last in finishing {
            let events = vec![
                open("mail bob@exa"),
                open("mple.com or joe"),
                call("{\"to\":\"amy"),
                (None, last.to_string()),
            ];
            let (out, hits, ok) = run(WireApi::Chat, policies(), &events);
            assert!(ok);
            assert_eq!(hits.len(), 1, "{last}");
            let mut content = String::new();
            let mut args = String::new();
            let mut scratch = Vec::new();
            for_each_event(out.as_bytes(), &mut scratch, |_, d| {
                let v: Value = serde_json::from_slice(d).unwrap();
                content.push_str(
                    v.pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
                for c in v
                    .pointer("/choices/0/delta/tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if c["index"] == 1 {
                        args.push_str(
                            c.pointer("/function/arguments")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
            let extra = if last.contains(" ok") { " ok" } else { "" };
            assert_eq!(
                content,
                format!("mail [REDACTED:email] or joe{extra}"),
                "{last}: {out}"
            );
            assert_eq!(args, "{\"to\":\"amy", "{last}: {out}");
        }
    }

    #[test]
    fn events_the_reader_cannot_follow_are_scanned_whole() {
        let policies = || vec![policy("pii", &["email"], GuardrailAction::Redact)];
        // A field given twice: a client keeps the last, but the first is in the bytes too.
        let twice =
            r#"{"choices":[{"index":0,"delta":{"content":"bob@example.com ","content":"hi"}}]}"#;
        let (out, hits, _) = run(WireApi::Chat, policies(), &[(None, twice.to_string())]);
        assert!(
            !out.contains("bob@") && out.contains("[REDACTED:email]"),
            "{out}"
        );
        assert_eq!(hits.len(), 1);
        // Not JSON: goes on as it came, as before.
        let (out, hits, _) = run(
            WireApi::Messages,
            policies(),
            &[(Some("x"), "{not json".to_string())],
        );
        assert!(out.starts_with("event: x\ndata: {not json\n\n"), "{out}");
        assert!(hits.is_empty());
    }
}
