//! The schema check on a streamed answer. Events pass as they come (nothing is held back
//! while the answer streams); the output text is gathered on the side, and the stream's
//! terminal event (`[DONE]`, `message_stop`, `response.completed`) is held until the text
//! is checked. A valid output ends the stream as the provider ended it; an invalid one ends
//! it with an error event naming the first violation instead. The client has seen the text
//! by then: a client that needs the guarantee before any byte uses `buffer_stream`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;

use super::check::{check_all, OutputSchema, Violation};
use super::output::outputs_of;
use super::MAX_OUTPUT_BYTES;
use crate::translate::{
    for_each_event, stream_error_event, write_error_event, write_event, StreamErrorEvent,
    StreamTranslator, TranslateError,
};
use crate::wire::{FinishReason, Usage, WireApi};

/// Most Chat choices gathered (`n` comes from the client, indexes from the provider).
const MAX_CHOICES: usize = 128;

/// One output being gathered.
#[derive(Default)]
struct Gathered {
    index: u64,
    text: String,
    /// The turn called tools or refused: not output to check (unless it also wrote text).
    not_output: bool,
    too_large: bool,
}

/// The relay's translator (or the provider's own events, for passthrough) with the output
/// checked against the schemas at the end.
pub struct SchemaCheckedStream {
    inner: Option<Box<dyn StreamTranslator>>,
    client: WireApi,
    schemas: Vec<OutputSchema>,
    outputs: Vec<Gathered>,
    translated: Vec<u8>,
    scratch: Vec<u8>,
    /// Responses `sequence_number` of the last event seen.
    sequence: u64,
    /// The terminal event went out, or the error that replaced it.
    ended: bool,
    verdict: Rc<RefCell<Option<Violation>>>,
}

impl SchemaCheckedStream {
    /// Checks what `inner` writes (or, without it, the provider's events, already in the
    /// client's format `client`) against `schemas`; a violation is also left in `verdict`
    /// for the record.
    pub fn new(
        inner: Option<Box<dyn StreamTranslator>>,
        client: WireApi,
        schemas: Vec<OutputSchema>,
        verdict: Rc<RefCell<Option<Violation>>>,
    ) -> Self {
        Self {
            inner,
            client,
            schemas,
            outputs: Vec::new(),
            translated: Vec::new(),
            scratch: Vec::new(),
            sequence: 0,
            ended: false,
            verdict,
        }
    }

    fn output(&mut self, index: u64) -> Option<&mut Gathered> {
        let at = match self.outputs.iter().position(|o| o.index == index) {
            Some(at) => at,
            None if self.outputs.len() < MAX_CHOICES => {
                self.outputs.push(Gathered {
                    index,
                    ..Gathered::default()
                });
                self.outputs.len() - 1
            }
            None => return None,
        };
        self.outputs.get_mut(at)
    }

    fn gather(&mut self, index: u64, text: &str) {
        if let Some(o) = self.output(index) {
            if o.text.len() + text.len() > MAX_OUTPUT_BYTES {
                o.too_large = true;
            } else {
                o.text.push_str(text);
            }
        }
    }

    fn not_output(&mut self, index: u64) {
        if let Some(o) = self.output(index) {
            o.not_output = true;
        }
    }

    /// The first violation among the gathered outputs.
    fn verdict_of_gathered(&self) -> Option<Violation> {
        if self.outputs.is_empty() {
            return check_all(&self.schemas, "").err();
        }
        self.outputs.iter().find_map(|o| {
            if o.too_large {
                return Some(Violation::TooLarge);
            }
            if o.not_output && o.text.is_empty() {
                return None;
            }
            check_all(&self.schemas, &o.text).err()
        })
    }

    /// Handles one event in the client's format, writing it (or what replaces it) to `out`.
    fn event(&mut self, name: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let terminal = match self.client {
            WireApi::Messages => self.messages_event(data),
            WireApi::Responses => self.responses_event(data),
            _ => self.chat_event(data),
        };
        match terminal {
            Terminal::No => write_event(out, name, data),
            Terminal::Yes(violation) => {
                self.ended = true;
                match violation {
                    None => write_event(out, name, data),
                    Some(v) => self.violated(v, out),
                }
            }
        }
    }

    fn violated(&mut self, v: Violation, out: &mut Vec<u8>) {
        let message = format!("The model's output did not match the JSON schema: {v}.");
        let error_type = match self.client {
            WireApi::Messages => "api_error",
            _ => "upstream_error",
        };
        let event = StreamErrorEvent {
            error_type,
            code: "json_schema_violation",
            message: &message,
            sequence: self.sequence,
        };
        write_error_event(out, self.client, &event);
        *self.verdict.borrow_mut() = Some(v);
    }

    fn chat_event(&mut self, data: &[u8]) -> Terminal {
        if data.trim_ascii() == b"[DONE]" {
            return Terminal::Yes(self.verdict_of_gathered());
        }
        let Ok(chunk) = serde_json::from_slice::<ChatChunk<'_>>(data) else {
            return Terminal::No;
        };
        for (pos, choice) in chunk.choices.iter().enumerate() {
            let index = choice.index.unwrap_or(pos as u64);
            if let Some(delta) = &choice.delta {
                if let Some(text) = &delta.content {
                    self.gather(index, text);
                }
                if delta.tool_calls.is_some() || delta.refusal.is_some() {
                    self.not_output(index);
                }
            }
            if choice.finish_reason.as_deref() == Some("tool_calls") {
                self.not_output(index);
            }
            if choice.finish_reason.is_some() && self.outputs.iter().all(|o| o.index != index) {
                // A choice that finished without a word still has an (empty) output.
                self.gather(index, "");
            }
        }
        Terminal::No
    }

    fn messages_event(&mut self, data: &[u8]) -> Terminal {
        let Ok(event) = serde_json::from_slice::<MessagesEvent<'_>>(data) else {
            return Terminal::No;
        };
        match event.kind.as_ref() {
            "content_block_start" => {
                let kind = event.content_block.as_ref().and_then(|b| b.kind.as_deref());
                if matches!(kind, Some("tool_use" | "server_tool_use")) {
                    self.not_output(0);
                }
            }
            "content_block_delta" => {
                if let Some(text) = event.delta.as_ref().and_then(|d| d.text.as_deref()) {
                    self.gather(0, text);
                }
            }
            "message_delta" => {
                let stop = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                if matches!(stop, Some("tool_use" | "refusal")) {
                    self.not_output(0);
                }
            }
            "message_stop" => return Terminal::Yes(self.verdict_of_gathered()),
            _ => {}
        }
        Terminal::No
    }

    fn responses_event(&mut self, data: &[u8]) -> Terminal {
        let Ok(event) = serde_json::from_slice::<ResponsesEvent<'_>>(data) else {
            return Terminal::No;
        };
        if let Some(n) = event.sequence_number {
            self.sequence = n;
        }
        match event.kind.as_ref() {
            // The whole answer is in the terminal event: check that, not the deltas.
            "response.completed" | "response.incomplete" => {
                let whole = event.response.unwrap_or_default();
                let verdict = outputs_of(WireApi::Responses, &whole)
                    .iter()
                    .find_map(|o| check_all(&self.schemas, &o.text).err());
                Terminal::Yes(verdict)
            }
            // A failed response already ends with its own error.
            "response.failed" => Terminal::Yes(None),
            _ => Terminal::No,
        }
    }
}

/// Whether an event ends the stream, and if so what the check found.
enum Terminal {
    No,
    Yes(Option<Violation>),
}

#[derive(Deserialize)]
struct ChatChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChatChoice<'a>>,
}

#[derive(Deserialize)]
struct ChatChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<ChatDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChatDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessagesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    content_block: Option<MessagesBlock<'a>>,
    #[serde(default, borrow)]
    delta: Option<MessagesDelta<'a>>,
}

#[derive(Deserialize)]
struct MessagesBlock<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessagesDelta<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    response: Option<serde_json::Value>,
}

impl SchemaCheckedStream {
    fn walk(&mut self, events: &[u8], out: &mut Vec<u8>) -> Result<(), TranslateError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let walked = for_each_event(events, &mut scratch, |n, d| {
            self.event(n, d, out);
            Ok(())
        });
        self.scratch = scratch;
        walked
    }
}

impl StreamTranslator for SchemaCheckedStream {
    fn push_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        let Some(inner) = self.inner.as_mut() else {
            self.event(name, data, out);
            return Ok(());
        };
        let mut translated = std::mem::take(&mut self.translated);
        translated.clear();
        let pushed = inner.push_event(name, data, &mut translated);
        let walked = self.walk(&translated, out);
        self.translated = translated;
        pushed.and(walked)
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self.inner.as_mut() {
            Some(inner) => {
                let mut tail = Vec::new();
                inner.finish(&mut tail);
                let _ = self.walk(&tail, out);
            }
            // The provider's own stream ended before its terminal event: say so, as the
            // relay does for a stream it passes through.
            None if !self.ended => {
                stream_error_event(out, self.client, "closed", self.sequence + 1)
            }
            None => {}
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.as_ref().and_then(|i| i.usage())
    }

    fn stop_reason(&self) -> Option<FinishReason> {
        self.inner.as_ref().and_then(|i| i.stop_reason())
    }
}
