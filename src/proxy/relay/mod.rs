//! `relay_stream`: passes an upstream SSE body to the client as it arrives.
//!
//! One buffer per stream, no allocation per event. Upstream bytes are read straight into the
//! buffer behind a small reserved prefix; chunked framing from the provider is removed in
//! place; the `SseScanner` finds where the last complete event ends; everything up to there
//! goes to the client as one HTTP chunk (its size line written into the prefix), and a partial
//! event stays for the next read. Forwarding only whole events is what lets a failure mid-way
//! end the stream with a well-formed error event instead of half an event.

use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::ChunkedDecoder;
use crate::translate::{for_each_event, SseScanner, StreamTranslator};
use crate::upstream::{BodyKind, UpstreamConn};
use crate::wire::{FinishReason, Usage, WireApi};

/// Room before the payload for the chunk size line (`ffffffff\r\n`).
const PREFIX: usize = 16;
/// Bytes read per call.
const READ_SIZE: usize = 32 * 1024;
/// A single event larger than this ends the stream (a provider bug or an attack).
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// How the provider frames its stream's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFrames {
    /// Server-sent events (OpenAI, Anthropic, Gemini).
    Sse,
    /// AWS event-stream binary messages (Bedrock ConverseStream); always translated.
    AwsEventStream,
}

/// How a relayed stream ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The upstream body ended properly and the client has all of it.
    Complete {
        /// The upstream connection's framing ended cleanly: it can go back to the pool.
        upstream_reusable: bool,
    },
    /// Writing to the client failed: it went away. The upstream connection is dropped,
    /// which cancels the provider's work.
    ClientGone,
    /// The provider failed mid-stream; the client got an error event and a proper end.
    UpstreamFailed(&'static str),
}

/// What the relay saw.
#[derive(Debug)]
pub struct RelayResult {
    /// How it ended.
    pub end: RelayEnd,
    /// Payload bytes sent to the client.
    pub bytes_out: u64,
    /// Usage, if the stream reported it.
    pub usage: Option<Usage>,
    /// The finish reason, if seen.
    pub finish_reason: Option<FinishReason>,
    /// When the response head was written.
    pub head_sent_at: Option<Instant>,
}

impl RelayResult {
    /// Time to first byte in ms relative to `start`.
    pub fn ttfb_ms(&self, start: Instant) -> f64 {
        self.head_sent_at
            .map_or(0.0, |t| t.duration_since(start).as_secs_f64() * 1000.0)
    }
}

/// How the upstream body is framed, with its running state.
enum Framing {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

/// How one stream is relayed: its bounds, and what to do besides forwarding.
pub struct RelayPlan<'a> {
    /// The whole call must end by then.
    pub deadline: Instant,
    /// Longest wait for the next upstream bytes.
    pub idle: Duration,
    /// Keeps a copy of what the client got (only when the answer will be cached).
    pub capture: Option<&'a mut Vec<u8>>,
    /// Translates events when the provider's format differs from the client's.
    pub translator: Option<Box<dyn StreamTranslator>>,
    /// The client's format (for the error event that ends a failed stream).
    pub client: WireApi,
    /// How the provider frames events.
    pub upstream_frames: UpstreamFrames,
}

/// Relays the stream. `head` is the client response head (chunked framing).
pub async fn relay_stream(
    client: &mut TcpStream,
    head: Vec<u8>,
    upstream: &mut UpstreamConn,
    body: BodyKind,
    plan: RelayPlan<'_>,
) -> RelayResult {
    let RelayPlan {
        deadline,
        idle,
        mut capture,
        mut translator,
        client: client_wire,
        upstream_frames,
    } = plan;
    let mut result = RelayResult {
        end: RelayEnd::Complete {
            upstream_reusable: false,
        },
        bytes_out: 0,
        usage: None,
        finish_reason: None,
        head_sent_at: None,
    };
    let (res, _) = client.write_all(head).await;
    if res.is_err() {
        result.end = RelayEnd::ClientGone;
        return result;
    }
    result.head_sent_at = Some(Instant::now());

    let mut framing = match body {
        BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new()),
        BodyKind::Length(n) => Framing::Length(n),
        BodyKind::UntilClose => Framing::UntilClose,
        BodyKind::Empty => Framing::Length(0),
    };
    let mut scanner = SseScanner::new();
    let mut out: Vec<u8> = Vec::with_capacity(PREFIX + READ_SIZE);
    out.resize(PREFIX, 0);
    let mut carry: Vec<u8> = Vec::new();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut xout: Vec<u8> = if translator.is_some() {
        vec![0u8; PREFIX]
    } else {
        Vec::new()
    };
    let mut scratch: Vec<u8> = Vec::new();
    let mut clean = true;
    // Bytes read along with the response head are the first input.
    let mut raw_start = out.len();
    out.extend_from_slice(&upstream.buf);
    upstream.buf.clear();
    let mut upstream_done = matches!(framing, Framing::Length(0));
    let mut eof = false;

    loop {
        // 1. Remove upstream framing from the raw bytes at out[raw_start..].
        let raw_end = out.len();
        if raw_end > raw_start {
            match &mut framing {
                Framing::Chunked(dec) => {
                    ranges.clear();
                    let base = out.as_ptr() as usize;
                    let raw = out.get(raw_start..raw_end).unwrap_or_default();
                    let fed = dec.feed(raw, |s| ranges.push((s.as_ptr() as usize - base, s.len())));
                    let used = match fed {
                        Ok(used) => used,
                        Err(_) => {
                            return fail(
                                client,
                                &[],
                                &mut result,
                                "malformed_chunk",
                                client_wire,
                                scanner.events(),
                                translator,
                            )
                            .await;
                        }
                    };
                    if raw_start + used < raw_end {
                        clean = false; // bytes after the terminal chunk
                    }
                    let mut w = raw_start;
                    for &(from, len) in &ranges {
                        out.copy_within(from..from + len, w);
                        w += len;
                    }
                    out.truncate(w);
                    upstream_done = dec.is_done();
                }
                Framing::Length(left) => {
                    let got = (raw_end - raw_start) as u64;
                    if got >= *left {
                        if got > *left {
                            clean = false;
                            out.truncate(raw_start + *left as usize);
                        }
                        *left = 0;
                        upstream_done = true;
                    } else {
                        *left -= got;
                    }
                }
                Framing::UntilClose => {}
            }
        }
        if eof {
            if matches!(framing, Framing::UntilClose) {
                upstream_done = true;
            } else if !upstream_done {
                return fail(
                    client,
                    &[],
                    &mut result,
                    "closed",
                    client_wire,
                    scanner.events(),
                    translator,
                )
                .await;
            }
        }

        // 2. Find complete events and send them (translated when the dialects differ).
        let boundary = match upstream_frames {
            UpstreamFrames::Sse => scanner.scan(out.get(PREFIX..).unwrap_or_default()),
            // Frames are found while they are translated below: one decode per frame.
            UpstreamFrames::AwsEventStream => out.len() - PREFIX,
        };
        let mut send_len = if upstream_done {
            out.len() - PREFIX
        } else {
            boundary
        };
        if let Some(t) = translator.as_deref_mut() {
            xout.truncate(PREFIX);
            if send_len > 0 {
                let region = out.get(PREFIX..PREFIX + send_len).unwrap_or_default();
                let pushed = match upstream_frames {
                    UpstreamFrames::Sse => for_each_event(region, &mut scratch, |name, data| {
                        t.push_event(name, data, &mut xout)
                    })
                    .map(|()| send_len)
                    .map_err(|_| "untranslatable_event"),
                    UpstreamFrames::AwsEventStream => {
                        for_each_aws_frame(region, upstream_done, |name, data| {
                            t.push_event(name, data, &mut xout)
                        })
                    }
                };
                match pushed {
                    Ok(used) => send_len = used,
                    Err(kind) => {
                        // What was translated before the bad event still goes out first.
                        let done = xout.get(PREFIX..).unwrap_or_default().to_vec();
                        return fail(client, &done, &mut result, kind, client_wire, 0, translator)
                            .await;
                    }
                }
                out.drain(PREFIX..PREFIX + send_len);
                scanner.consumed(send_len);
            }
            if upstream_done {
                t.finish(&mut xout);
            }
            let len = xout.len() - PREFIX;
            if len > 0 {
                let start = write_size_line(&mut xout, len);
                xout.extend_from_slice(b"\r\n");
                let (res, slice) = client.write_all(xout.slice(start..)).await;
                xout = slice.into_inner();
                if res.is_err() {
                    result.end = RelayEnd::ClientGone;
                    return finish(result, &scanner);
                }
                result.bytes_out += len as u64;
                if let Some(c) = capture.as_deref_mut() {
                    c.extend_from_slice(xout.get(PREFIX..PREFIX + len).unwrap_or_default());
                }
            }
        } else if send_len > 0 {
            carry.clear();
            carry.extend_from_slice(out.get(PREFIX + send_len..).unwrap_or_default());
            out.truncate(PREFIX + send_len);
            let start = write_size_line(&mut out, send_len);
            out.extend_from_slice(b"\r\n");
            let (res, slice) = client.write_all(out.slice(start..)).await;
            out = slice.into_inner();
            if res.is_err() {
                result.end = RelayEnd::ClientGone;
                return finish(result, &scanner);
            }
            result.bytes_out += send_len as u64;
            if let Some(c) = capture.as_deref_mut() {
                // Only when the answer will be cached: the stream is kept to store it whole.
                c.extend_from_slice(out.get(PREFIX..PREFIX + send_len).unwrap_or_default());
            }
            out.truncate(PREFIX);
            out.extend_from_slice(&carry);
            scanner.consumed(send_len);
        }
        if upstream_done {
            let (res, _) = client.write_all(&b"0\r\n\r\n"[..]).await;
            result.end = if res.is_err() {
                RelayEnd::ClientGone
            } else {
                RelayEnd::Complete {
                    upstream_reusable: clean && !eof,
                }
            };
            if let Some(t) = translator.as_deref() {
                result.usage = t.usage();
                result.finish_reason = t.stop_reason();
                return result;
            }
            return finish(result, &scanner);
        }

        // 3. Read more from the provider.
        if out.len() - PREFIX > MAX_PENDING {
            return fail(
                client,
                &[],
                &mut result,
                "event_too_large",
                client_wire,
                scanner.events(),
                translator,
            )
            .await;
        }
        if out.capacity() - out.len() < 4096 {
            out.reserve(READ_SIZE);
        }
        let now = Instant::now();
        let Some(left) = deadline.checked_duration_since(now) else {
            return fail(
                client,
                &[],
                &mut result,
                "timeout",
                client_wire,
                scanner.events(),
                translator,
            )
            .await;
        };
        raw_start = out.len();
        let cap = out.capacity();
        let read = upstream.io.read(out.slice_mut(raw_start..cap));
        match monoio::time::timeout(left.min(idle), read).await {
            Ok((Ok(0), slice)) => {
                out = slice.into_inner();
                eof = true;
            }
            Ok((Ok(_), slice)) => out = slice.into_inner(),
            Ok((Err(_), slice)) => {
                out = slice.into_inner();
                out.truncate(raw_start);
                return fail(
                    client,
                    &[],
                    &mut result,
                    "reset",
                    client_wire,
                    scanner.events(),
                    translator,
                )
                .await;
            }
            Err(_) => {
                return fail(
                    client,
                    &[],
                    &mut result,
                    "stalled",
                    client_wire,
                    scanner.events(),
                    translator,
                )
                .await;
            }
        }
    }
}

fn finish(mut result: RelayResult, scanner: &SseScanner) -> RelayResult {
    result.usage = scanner.usage();
    result.finish_reason = scanner.finish_reason();
    result
}

/// Writes the hex size line right before `out[PREFIX..]`; returns where the chunk starts.
fn write_size_line(out: &mut [u8], len: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.leading_zeros()).div_ceil(4) as usize).max(1);
    // The prefix holds 14 hex digits: chunks of up to 2^56 bytes.
    let Some(start) = (PREFIX - 2).checked_sub(digits) else {
        return PREFIX;
    };
    if let Some(line) = out.get_mut(start..PREFIX) {
        let (hex, crlf) = line.split_at_mut(digits);
        for (k, d) in hex.iter_mut().rev().enumerate() {
            *d = HEX.get((len >> (4 * k)) & 15).copied().unwrap_or(b'0');
        }
        crlf.copy_from_slice(b"\r\n");
    }
    start
}

/// Ends the client's stream after a provider failure: `before` (events already translated)
/// goes out first, then the translator's own ending, or else an error event in the client's
/// format. Any partial upstream event is dropped so the client never sees half an event.
async fn fail(
    client: &mut TcpStream,
    before: &[u8],
    result: &mut RelayResult,
    kind: &'static str,
    client_wire: WireApi,
    next_sequence: u64,
    translator: Option<Box<dyn StreamTranslator>>,
) -> RelayResult {
    tracing::warn!(
        kind,
        "provider stream failed mid-way; ending the client stream with an error event"
    );
    let mut events = before.to_vec();
    let usage = match translator {
        Some(mut t) => {
            t.finish(&mut events);
            t.usage()
        }
        None => {
            error_event(&mut events, client_wire, kind, next_sequence);
            None
        }
    };
    let mut chunk = Vec::with_capacity(events.len() + 16);
    if !events.is_empty() {
        let _ = std::io::Write::write_fmt(&mut chunk, format_args!("{:x}\r\n", events.len()));
        chunk.extend_from_slice(&events);
        chunk.extend_from_slice(b"\r\n");
    }
    chunk.extend_from_slice(b"0\r\n\r\n");
    let (res, _) = client.write_all(chunk).await;
    let end = if res.is_err() {
        RelayEnd::ClientGone
    } else {
        RelayEnd::UpstreamFailed(kind)
    };
    RelayResult {
        end,
        bytes_out: result.bytes_out + events.len() as u64,
        usage,
        finish_reason: None,
        head_sent_at: result.head_sent_at,
    }
}

/// The error event that ends an untranslated stream, in the client's own format.
fn error_event(out: &mut Vec<u8>, client: WireApi, kind: &str, next_sequence: u64) {
    let message = format!("The provider's stream was interrupted ({kind}).");
    let text = match client {
        WireApi::Messages => format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"{message}\"}}}}\n\n"
        ),
        WireApi::Responses => format!(
            "event: error\ndata: {{\"type\":\"error\",\"code\":\"upstream_stream_interrupted\",\"message\":\"{message}\",\"param\":null,\"sequence_number\":{next_sequence}}}\n\n"
        ),
        _ => format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"upstream_stream_interrupted\"}}}}\n\n"
        ),
    };
    out.extend_from_slice(text.as_bytes());
}

/// Calls `f(name, payload)` for each whole AWS event-stream message at the start of
/// `region`; the name is the `:event-type`, or `exception:<type>` for an exception message.
/// Returns the bytes used: a partial message at the end waits for more bytes, unless the
/// upstream body is `complete` (then it is a truncated message). The error is the failure kind.
fn for_each_aws_frame(
    region: &[u8],
    complete: bool,
    mut f: impl FnMut(Option<&[u8]>, &[u8]) -> Result<(), crate::translate::TranslateError>,
) -> Result<usize, &'static str> {
    let mut at = 0;
    let mut name = Vec::with_capacity(64);
    while at < region.len() {
        let rest = region.get(at..).unwrap_or_default();
        let (frame, used) = match crate::translate::eventstream::decode_frame(rest) {
            Ok(Some(x)) => x,
            Ok(None) if !complete => break,
            Ok(None) | Err(_) => return Err("malformed_frame"),
        };
        name.clear();
        if frame.message_type() == Some("exception") {
            name.extend_from_slice(b"exception:");
            name.extend_from_slice(frame.exception_type().unwrap_or("unknown").as_bytes());
        } else {
            name.extend_from_slice(frame.event_type().unwrap_or("").as_bytes());
        }
        f(Some(&name), frame.payload()).map_err(|_| "untranslatable_event")?;
        at += used;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_frames_are_translated_whole_and_a_partial_one_waits() {
        let mut buf = Vec::new();
        for (kind, payload) in [
            ("messageStart", &b"{\"a\":1}"[..]),
            ("contentBlockDelta", b"{}"),
        ] {
            crate::translate::encode_frame(
                &[(":message-type", "event"), (":event-type", kind)],
                payload,
                &mut buf,
            );
        }
        let whole = buf.len();
        crate::translate::encode_frame(&[(":message-type", "event")], b"{}", &mut buf);
        buf.truncate(buf.len() - 3);
        let mut seen = Vec::new();
        let used = for_each_aws_frame(&buf, false, |name, data| {
            seen.push((name.map(<[u8]>::to_vec), data.to_vec()));
            Ok(())
        });
        assert_eq!(used, Ok(whole));
        assert_eq!(
            seen[0],
            (Some(b"messageStart".to_vec()), b"{\"a\":1}".to_vec())
        );
        assert_eq!(seen.len(), 2);
        // The body ended: the partial message is a truncated one.
        assert_eq!(
            for_each_aws_frame(&buf, true, |_, _| Ok(())),
            Err("malformed_frame")
        );
    }

    #[test]
    fn size_line_sits_right_before_the_payload() {
        let mut out = vec![0u8; PREFIX];
        out.extend_from_slice(&[b'x'; 300]);
        let start = write_size_line(&mut out, 300);
        assert_eq!(&out[start..PREFIX + 3], b"12c\r\nxxx");
        let mut out = vec![0u8; PREFIX];
        let start = write_size_line(&mut out, 0xffff_ffff);
        assert_eq!(&out[start..PREFIX], b"ffffffff\r\n");
    }
}
