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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{json, Value};

use super::body::{scan_body, Hit};
use super::detector::Detector;
use super::policy::GuardrailPolicy;
use super::stream::StreamScanner;
use crate::config::GuardrailAction;
use crate::translate::{
    for_each_event, stream_error_event, write_error_event, StreamErrorEvent, StreamTranslator,
    TranslateError,
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
    /// Stream offset of the channel's text already pushed (for hit bookkeeping only).
    pushed: usize,
}

/// The relay's translator with the response guardrails applied to what it produces.
pub struct GuardedStream {
    inner: Option<Box<dyn StreamTranslator>>,
    client: WireApi,
    policies: Vec<Arc<GuardrailPolicy>>,
    channels: Vec<Channel>,
    translated: Vec<u8>,
    scratch: Vec<u8>,
    sequence: u64,
    blocked: bool,
    /// The client's terminal event went out (`[DONE]`, `message_stop`, `response.completed`).
    ended: bool,
    hits: Rc<RefCell<Vec<Hit>>>,
}

/// Why a stream was stopped.
struct Blocked(Hit);

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
            policies,
            channels: Vec::new(),
            translated: Vec::new(),
            scratch: Vec::new(),
            sequence: 0,
            blocked: false,
            ended: false,
            hits,
        }
    }

    fn channel(&mut self, key: ChannelKey) -> Option<&mut Channel> {
        let at = match self.channels.iter().position(|c| c.key == key) {
            Some(at) => at,
            None if self.channels.len() < MAX_CHANNELS => {
                let scanners = self
                    .policies
                    .iter()
                    .map(|p| match p.action {
                        GuardrailAction::Redact => StreamScanner::new(Arc::clone(&p.detector)),
                        _ => StreamScanner::detect_only(Arc::clone(&p.detector)),
                    })
                    .collect();
                self.channels.push(Channel {
                    key,
                    scanners,
                    pushed: 0,
                });
                self.channels.len() - 1
            }
            None => return None,
        };
        self.channels.get_mut(at)
    }

    /// Pushes a delta through the channel's scanners; returns the text to send now.
    fn push(&mut self, key: ChannelKey, delta: &str, field: &str) -> Result<String, Blocked> {
        self.pass(key, Some(delta), field)
    }

    /// Ends a channel; returns its held-back text.
    fn flush(&mut self, key: ChannelKey, field: &str) -> Result<String, Blocked> {
        if !self.channels.iter().any(|c| c.key == key) {
            return Ok(String::new());
        }
        let out = self.pass(key, None, field);
        self.channels.retain(|c| c.key != key);
        out
    }

    fn pass(
        &mut self,
        key: ChannelKey,
        delta: Option<&str>,
        field: &str,
    ) -> Result<String, Blocked> {
        let policies = self.policies.clone();
        let hits = Rc::clone(&self.hits);
        let Some(channel) = self.channel(key) else {
            return Ok(delta.unwrap_or_default().to_string());
        };
        channel.pushed += delta.map_or(0, str::len);
        let mut text = delta.map(str::to_string);
        let mut carried = String::new();
        for (scanner, policy) in channel.scanners.iter_mut().zip(&policies) {
            let mut out = String::new();
            let mut found = match &text {
                Some(t) => scanner.push(t, &mut out),
                None => Vec::new(),
            };
            if !carried.is_empty() {
                found.extend(scanner.push(&carried, &mut out));
            }
            if text.is_none() {
                found.extend(scanner.finish(&mut out));
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
            // What this policy released goes through the next one.
            match &mut text {
                Some(t) => *t = out,
                None => carried = out,
            }
        }
        Ok(text.unwrap_or(carried))
    }

    /// Scans the whole JSON of an event that is not a delta (full texts in `.done` events,
    /// `response.completed`); returns it redacted if needed.
    fn whole(&mut self, v: &mut Value) -> Result<(), Blocked> {
        let bytes = v.to_string();
        let scan = scan_body(&self.policies, bytes.as_bytes());
        self.hits.borrow_mut().extend(scan.hits.iter().cloned());
        if let Some(hit) = scan.blocked {
            return Err(Blocked(hit));
        }
        if let Some(redacted) = scan.redacted.and_then(|b| serde_json::from_slice(&b).ok()) {
            *v = redacted;
        }
        Ok(())
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
        let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
            write_event(out, name, data);
            return Ok(());
        };
        if matches!(
            v.get("type").and_then(Value::as_str),
            Some("message_stop" | "response.completed" | "response.failed" | "response.incomplete")
        ) {
            self.ended = true;
        }
        match self.client {
            WireApi::Messages => self.messages_event(v, out),
            WireApi::Responses => {
                let mut before = Vec::new();
                self.responses_event(&mut v, &mut before)?;
                for mut e in before.into_iter().chain(std::iter::once(v)) {
                    if e.get("sequence_number").is_some() {
                        set(&mut e, "/sequence_number", self.sequence.into());
                        self.sequence += 1;
                    }
                    write_json_event(out, e);
                }
                Ok(())
            }
            _ => {
                self.chat_event(&mut v)?;
                write_event(out, name, v.to_string().as_bytes());
                Ok(())
            }
        }
    }

    fn chat_event(&mut self, v: &mut Value) -> Result<(), Blocked> {
        let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (pos, choice) in choices.iter_mut().enumerate() {
            let i = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                let text = text.to_string();
                let released = self.push((i, 0, TEXT), &text, "content")?;
                set(choice, "/delta/content", released.into());
            }
            let calls = choice
                .pointer_mut("/delta/tool_calls")
                .and_then(Value::as_array_mut);
            for call in calls.into_iter().flatten() {
                let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    let args = args.to_string();
                    let released = self.push((i, k, TOOL), &args, "arguments")?;
                    set(call, "/function/arguments", released.into());
                }
            }
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                self.flush_choice(i, choice)?;
            }
        }
        Ok(())
    }

    /// A finished choice's held-back text rides on its last chunk.
    fn flush_choice(&mut self, i: u64, choice: &mut Value) -> Result<(), Blocked> {
        let rest = self.flush((i, 0, TEXT), "content")?;
        if !rest.is_empty() {
            let before = choice
                .pointer("/delta/content")
                .and_then(Value::as_str)
                .unwrap_or("");
            let joined = format!("{before}{rest}");
            if let Some(delta) = ensure_object(choice, "delta") {
                put(delta, "content", joined.into());
            }
        }
        let tools: Vec<ChannelKey> = self
            .channels
            .iter()
            .map(|c| c.key)
            .filter(|(ci, _, kind)| *ci == i && *kind == TOOL)
            .collect();
        for key in tools {
            let rest = self.flush(key, "arguments")?;
            if rest.is_empty() {
                continue;
            }
            let Some(delta) = ensure_object(choice, "delta") else {
                continue;
            };
            if !delta.get("tool_calls").is_some_and(Value::is_array) {
                put(delta, "tool_calls", json!([]));
            }
            if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                calls.push(json!({"index": key.1, "function": {"arguments": rest}}));
            }
        }
        Ok(())
    }

    fn messages_event(&mut self, mut v: Value, out: &mut Vec<u8>) -> Result<(), Blocked> {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_delta" => {
                let delta_type = v
                    .pointer("/delta/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let (field, tag) = match delta_type {
                    "text_delta" => ("text", TEXT),
                    "input_json_delta" => ("partial_json", TOOL),
                    _ => ("", TEXT),
                };
                if let Some(text) = v
                    .pointer(&format!("/delta/{field}"))
                    .and_then(Value::as_str)
                {
                    let text = text.to_string();
                    let released = self.push((index, 0, tag), &text, field)?;
                    set(&mut v, &format!("/delta/{field}"), released.into());
                }
            }
            "content_block_stop" => {
                for (tag, field, delta_type) in [
                    (TEXT, "text", "text_delta"),
                    (TOOL, "partial_json", "input_json_delta"),
                ] {
                    let rest = self.flush((index, 0, tag), field)?;
                    if !rest.is_empty() {
                        let e = json!({"type": "content_block_delta", "index": index, "delta": {"type": delta_type, field: rest}});
                        write_json_event(out, e);
                    }
                }
            }
            "ping" | "message_delta" | "message_stop" => {}
            _ => self.whole(&mut v)?,
        }
        write_json_event(out, v);
        Ok(())
    }

    fn responses_event(&mut self, v: &mut Value, before: &mut Vec<Value>) -> Result<(), Blocked> {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let output = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let content = v.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let (key, field) = match kind.as_str() {
            "response.output_text.delta" | "response.output_text.done" => {
                ((output, content, TEXT), "text")
            }
            "response.function_call_arguments.delta" | "response.function_call_arguments.done" => {
                ((output, 0, TOOL), "arguments")
            }
            _ => {
                return self.whole(v);
            }
        };
        if kind.ends_with(".delta") {
            if let Some(text) = v.get("delta").and_then(Value::as_str) {
                let text = text.to_string();
                let released = self.push(key, &text, field)?;
                set(v, "/delta", released.into());
            }
            return Ok(());
        }
        // `.done`: the held-back tail goes out as one more delta, then the full text, scanned.
        let rest = self.flush(key, field)?;
        if !rest.is_empty() {
            let mut delta = v.clone();
            if let Some(o) = delta.as_object_mut() {
                o.remove("text");
                o.remove("arguments");
                o.insert("type".into(), kind.replace(".done", ".delta").into());
                o.insert("delta".into(), rest.into());
            }
            before.push(delta);
        }
        self.whole(v)
    }
}

/// Replaces the value at `pointer`, which the caller just read (so it exists).
fn set(v: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
    }
}

/// Sets `key` of `v` when `v` is an object.
fn put(v: &mut Value, key: &str, new: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), new);
    }
}

/// `v[key]`, made an object if it is not one; `None` when `v` is not an object.
fn ensure_object<'v>(v: &'v mut Value, key: &str) -> Option<&'v mut Value> {
    let slot = v
        .as_object_mut()?
        .entry(key.to_string())
        .or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    Some(slot)
}

fn write_event(out: &mut Vec<u8>, name: Option<&[u8]>, data: &[u8]) {
    if let Some(n) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(n);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// An event named by its JSON `type` (Messages, Responses).
fn write_json_event(out: &mut Vec<u8>, v: Value) {
    let name = v.get("type").and_then(Value::as_str).map(str::to_string);
    write_event(
        out,
        name.as_deref().map(str::as_bytes),
        v.to_string().as_bytes(),
    );
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
    use super::*;
    use crate::config::{GuardrailConfig, GuardrailSide};

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
}
