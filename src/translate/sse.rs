//! `SseScanner`: finds event boundaries in a Server-Sent Events byte stream and reads the few
//! fields the gateway records (usage, finish reason, `[DONE]`), without allocating.

use std::sync::LazyLock;

use memchr::memmem;

use super::TranslateError;
use crate::api::find_top_level_value;
use crate::wire::{FinishReason, Usage, WireApi};

/// Incremental scanner over a buffer of SSE bytes that grows at the end and is consumed at the
/// front (the relay forwards complete events and keeps any partial one).
#[derive(Debug, Default)]
pub struct SseScanner {
    /// Where the current (incomplete) event starts in the buffer.
    event_start: usize,
    /// How far lines have been examined.
    scan_pos: usize,
    /// Usage from the last event that carried one.
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    done: bool,
    events: u64,
    /// Why the stream stopped being relayable: an event that is not UTF-8 or holds a line
    /// that is no SSE field (set once; nothing after it is scanned).
    malformed: Option<&'static str>,
}

impl SseScanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Examines `buf` from where the last call stopped; returns the offset just past the last
    /// complete event (0 when none is complete yet). A malformed event stops the scan before
    /// it (see [`Self::malformed`]).
    pub fn scan(&mut self, buf: &[u8]) -> usize {
        let mut boundary = 0;
        if self.malformed.is_some() {
            return boundary;
        }
        // A `scan_pos` past the end (the buffer shrank without `consumed`) finds no line.
        while let Some((line, _)) = buf.get(self.scan_pos..).and_then(split_line) {
            let line_start = self.scan_pos;
            self.scan_pos = line_start + line.len() + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if let Some(event) = buf
                    .get(self.event_start..line_start)
                    .filter(|e| !e.is_empty())
                {
                    if let Err(why) = self.read_event(event) {
                        self.malformed = Some(why);
                        return boundary;
                    }
                    self.events += 1;
                }
                self.event_start = self.scan_pos;
                boundary = self.scan_pos;
            }
        }
        boundary
    }

    /// Tells the scanner that the first `n` bytes were forwarded and removed from the buffer.
    pub fn consumed(&mut self, n: usize) {
        self.event_start = self.event_start.saturating_sub(n);
        self.scan_pos = self.scan_pos.saturating_sub(n);
    }

    /// Reads what the record needs from one complete event; the error says why the event
    /// is not one to pass on (its usage and finish reason are not kept then).
    fn read_event(&mut self, event: &[u8]) -> Result<(), &'static str> {
        if std::str::from_utf8(event).is_err() {
            return Err("invalid_utf8_event");
        }
        let (usage, finish_reason, done) = (self.usage, self.finish_reason, self.done);
        let mut rest = event;
        while !rest.is_empty() {
            let (line, next) = split_line(rest).unwrap_or((rest, &[]));
            rest = next;
            let Some(data) = line.strip_prefix(b"data:") else {
                if !is_sse_field(line) {
                    (self.usage, self.finish_reason, self.done) = (usage, finish_reason, done);
                    return Err("malformed_event");
                }
                continue;
            };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            let data = data.strip_suffix(b"\r").unwrap_or(data);
            if data == b"[DONE]" {
                self.done = true;
                continue;
            }
            if let Some(reason) = find_finish_reason(data) {
                self.finish_reason = Some(reason);
            }
            if USAGE_KEY
                .find(data)
                .and_then(|at| data.get(at + b"\"usage\"".len()..))
                .is_some_and(|rest| !usage_is_null(rest))
            {
                // Top level (OpenAI, Anthropic `message_delta`), or inside the message
                // (Anthropic `message_start`) or the response (Responses `response.completed`).
                let found = find_top_level_value(data, "usage")
                    .and_then(|span| span.slice(data))
                    .or_else(|| nested_usage(data, "message"))
                    .or_else(|| nested_usage(data, "response"));
                if let Some(u) = found.and_then(Usage::from_usage_json) {
                    // Anthropic reports input tokens at the start and output tokens at the
                    // end: a later count of zero does not erase an earlier one.
                    let before = self.usage.unwrap_or_default();
                    let later = |old: u64, new: u64| if new > 0 { new } else { old };
                    self.usage = Some(Usage {
                        input_tokens: later(before.input_tokens, u.input_tokens),
                        output_tokens: later(before.output_tokens, u.output_tokens),
                        cache_read_tokens: later(before.cache_read_tokens, u.cache_read_tokens),
                        cache_creation_tokens: later(
                            before.cache_creation_tokens,
                            u.cache_creation_tokens,
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Why the stream can't be relayed past the last event [`Self::scan`] returned: an
    /// event that is not UTF-8 (`invalid_utf8_event`), or one with a line that is no SSE
    /// field nor comment (`malformed_event`), as when events run into each other.
    pub fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    /// Usage, when the stream reported it (`stream_options.include_usage`).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The last non-null finish reason seen.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// True once `data: [DONE]` was seen.
    pub fn saw_done(&self) -> bool {
        self.done
    }

    /// Complete events seen.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Whether `line` (of a complete event) is an SSE field the dialects send (`data`, `event`,
/// `id`, `retry`; with or without a value) or a comment (`:`). Any other line is a field
/// the SSE rules would ignore, but no provider sends one: it means broken framing.
fn is_sse_field(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let name = match memchr::memchr(b':', line) {
        Some(at) => line.get(..at).unwrap_or_default(),
        None => line,
    };
    matches!(name, b"" | b"data" | b"event" | b"id" | b"retry")
}

/// Splits `b` at its first `\n`: the line before it and the bytes after it (`None` when `b`
/// holds no newline).
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (line, rest) = b.split_at_checked(memchr::memchr(b'\n', b)?)?;
    Some((line, rest.get(1..)?))
}

/// Searchers built once (building one per event costs more than the search).
static FINISH_REASON_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"finish_reason\""));
static USAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\""));

fn find_finish_reason(data: &[u8]) -> Option<FinishReason> {
    const KEY: &[u8] = b"\"finish_reason\"";
    let at = FINISH_REASON_KEY.find(data)?;
    let rest = data.get(at + KEY.len()..)?;
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    Some(FinishReason::from_openai(
        std::str::from_utf8(rest.get(..end)?).ok()?,
    ))
}

/// The `usage` object inside the top-level object `key` of `data`, if both are there.
fn nested_usage<'a>(data: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let outer = find_top_level_value(data, key)?;
    let inner = outer.slice(data)?;
    find_top_level_value(inner, "usage")?.slice(inner)
}

/// Whether the value after a `"usage"` key (`rest` starts after the key) is `null`: most
/// chunks of a stream with `include_usage` carry `"usage":null`, and need no JSON scan.
fn usage_is_null(rest: &[u8]) -> bool {
    let rest = rest.trim_ascii_start();
    rest.strip_prefix(b":")
        .is_some_and(|r| r.trim_ascii_start().starts_with(b"null"))
}

/// Parses one stream event's JSON payload. The bytes are checked as UTF-8 once, up front
/// (vectorized), so the parser need not check each string again: cheaper than
/// `serde_json::from_slice` on the per-event path.
pub(crate) fn parse_event<'a, T: serde::Deserialize<'a>>(
    data: &'a [u8],
    what: &'static str,
) -> Result<T, TranslateError> {
    let text = std::str::from_utf8(data).map_err(|e| TranslateError::invalid(what, e))?;
    serde_json::from_str(text).map_err(|e| TranslateError::invalid(what, e))
}

/// Calls `f(event_name, data)` for each complete event in `region` (whole events only).
/// Several `data:` lines of one event are joined with `\n` in `scratch`.
pub fn for_each_event(
    region: &[u8],
    scratch: &mut Vec<u8>,
    mut f: impl FnMut(Option<&[u8]>, &[u8]) -> Result<(), TranslateError>,
) -> Result<(), TranslateError> {
    let mut name: Option<&[u8]> = None;
    let mut data: Option<&[u8]> = None;
    let mut multi = false;
    let mut rest = Some(region);
    // Lines found with memchr; the piece after the last newline counts as a line too.
    while let Some(r) = rest {
        let line = match split_line(r) {
            Some((line, next)) => {
                rest = Some(next);
                line
            }
            None => {
                rest = None;
                r
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if multi {
                f(name, scratch)?;
            } else if let Some(d) = data {
                f(name, d)?;
            }
            name = None;
            data = None;
            multi = false;
            continue;
        }
        if let Some(v) = line.strip_prefix(b"event:") {
            name = Some(v.strip_prefix(b" ").unwrap_or(v));
        } else if let Some(v) = line.strip_prefix(b"data:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            match (data, multi) {
                (None, _) => data = Some(v),
                (Some(first), false) => {
                    scratch.clear();
                    scratch.extend_from_slice(first);
                    scratch.push(b'\n');
                    scratch.extend_from_slice(v);
                    multi = true;
                }
                (Some(_), true) => {
                    scratch.push(b'\n');
                    scratch.extend_from_slice(v);
                }
            }
        }
    }
    Ok(())
}

/// The error event that ends a stream the gateway could not finish (the provider failed
/// mid-way, `kind` says how; or `run_killed`), in the client's own format. Shared by the
/// relay and the guarded streams of guardrails.
pub fn stream_error_event(out: &mut Vec<u8>, client: WireApi, kind: &str, next_sequence: u64) {
    let interrupted;
    let (message, code) = if kind == "run_killed" {
        (
            "The agent run was killed by an operator; this call was cut.",
            "run_killed",
        )
    } else {
        interrupted = format!("The provider's stream was interrupted ({kind}).");
        (interrupted.as_str(), "upstream_stream_interrupted")
    };
    let error_type = match client {
        WireApi::Messages => "api_error",
        _ => "upstream_error",
    };
    write_error_event(
        out,
        client,
        &StreamErrorEvent {
            error_type,
            code,
            message,
            sequence: next_sequence,
        },
    );
}

/// Starts an SSE event: its `event:` line when it has a name, then `data: `.
pub fn write_event_head(out: &mut Vec<u8>, name: Option<&[u8]>) {
    if let Some(n) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(n);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
}

/// Writes one whole SSE event.
pub fn write_event(out: &mut Vec<u8>, name: Option<&[u8]>, data: &[u8]) {
    write_event_head(out, name);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// What an error event that ends a stream says.
#[derive(Debug, Clone, Copy)]
pub struct StreamErrorEvent<'a> {
    /// The error's `type` (Chat `error.type`, Messages `error.type`).
    pub error_type: &'a str,
    /// The error's `code` (Chat, Responses).
    pub code: &'a str,
    /// What happened, for people.
    pub message: &'a str,
    /// The Responses `sequence_number` the event takes.
    pub sequence: u64,
}

/// Writes an error event in `client`'s stream format (Messages and Responses name it
/// `error`; Chat sends a bare `data:` with an `error` object), fields in the providers'
/// order, strings JSON-escaped.
pub fn write_error_event(out: &mut Vec<u8>, client: WireApi, e: &StreamErrorEvent<'_>) {
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    let (error_type, code, message) = (quoted(e.error_type), quoted(e.code), quoted(e.message));
    let text = match client {
        WireApi::Messages => format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":{error_type},\"message\":{message}}}}}\n\n"
        ),
        WireApi::Responses => format!(
            "event: error\ndata: {{\"type\":\"error\",\"code\":{code},\"message\":{message},\"param\":null,\"sequence_number\":{}}}\n\n",
            e.sequence
        ),
        _ => format!(
            "data: {{\"error\":{{\"message\":{message},\"type\":{error_type},\"param\":null,\"code\":{code}}}}}\n\n"
        ),
    };
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_event_stops_the_scan_before_it() {
        let good = "event: a\nid: 7\nretry: 10\n: a comment\ndata: {\"x\":1}\n\n";
        let garbage = "data: {\"x\":2}\n}}{{ not an SSE line\ndata: {\"x\":3}\n\n";
        let mut s = SseScanner::new();
        let stream = format!("{good}{garbage}data: {{\"x\":4}}\n\n");
        assert_eq!(s.scan(stream.as_bytes()), good.len());
        assert_eq!(s.malformed(), Some("malformed_event"));
        assert_eq!(s.events(), 1);
        // Nothing after it is whole any more.
        assert_eq!(s.scan(stream.as_bytes()), 0);

        let mut s = SseScanner::new();
        let mut stream = good.as_bytes().to_vec();
        stream.extend_from_slice(
            b"data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":\xff}}\n\n",
        );
        assert_eq!(s.scan(&stream), good.len());
        assert_eq!(s.malformed(), Some("invalid_utf8_event"));
        assert_eq!(s.usage(), None);

        let mut s = SseScanner::new();
        assert_eq!(s.scan(good.as_bytes()), good.len());
        assert_eq!(s.malformed(), None);
    }

    #[test]
    fn usage_of_anthropic_and_responses_streams() {
        let mut s = SseScanner::new();
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\n",
        );
        s.scan(stream.as_bytes());
        let u = s.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (25, 12));
        let mut s = SseScanner::new();
        let stream = concat!(
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null},\"sequence_number\":0}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":9,\"output_tokens\":4,\"total_tokens\":13}},\"sequence_number\":5}\n\n",
        );
        s.scan(stream.as_bytes());
        let u = s.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (9, 4));
    }

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        ": keep-alive comment\n\n",
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n"
    );

    /// Feeds the stream in pieces of `step` bytes the way the relay does: append, scan,
    /// forward up to the boundary, keep the rest.
    fn relay(step: usize) -> (SseScanner, String) {
        let mut s = SseScanner::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = String::new();
        for piece in STREAM.as_bytes().chunks(step) {
            buf.extend_from_slice(piece);
            let b = s.scan(&buf);
            out.push_str(std::str::from_utf8(&buf[..b]).unwrap());
            buf.drain(..b);
            s.consumed(b);
        }
        assert!(buf.is_empty());
        (s, out)
    }

    #[test]
    fn reads_usage_finish_and_done_at_any_split() {
        for step in 1..STREAM.len() {
            let (s, out) = relay(step);
            assert_eq!(out, STREAM, "step {step}");
            assert_eq!(
                s.usage(),
                Some(Usage {
                    input_tokens: 9,
                    output_tokens: 2,
                    ..Usage::default()
                })
            );
            assert_eq!(s.finish_reason(), Some(FinishReason::EndTurn));
            assert!(s.saw_done());
            assert_eq!(s.events(), 6);
        }
    }

    #[test]
    fn partial_event_is_not_a_boundary() {
        let mut s = SseScanner::new();
        assert_eq!(s.scan(b"data: {\"a\":1}\n"), 0);
        assert_eq!(s.scan(b"data: {\"a\":1}\n\ndata: {\"b\""), 15);
    }
}
