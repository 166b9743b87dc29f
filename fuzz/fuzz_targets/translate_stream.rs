//! Every stream translator, through `translate::Bridge::stream` and fed the way the relay
//! feeds it (`proxy/relay/events.rs`, `sink.rs`): SSE providers' bytes are cut into reads,
//! `SseScanner` finds the whole events and `for_each_event` hands each to the translator;
//! for Bedrock the events are encoded as AWS event-stream frames and decoded back, named by
//! `:event-type` (or `exception:<type>`). A failed event ends the stream with the
//! translator's own ending, as the relay does; otherwise `finish` ends it.
//!
//! Input: byte 0 picks the pair, byte 1 `include_usage` and the read size, the rest is the
//! provider's stream as SSE text, then (after a NUL, optional) the client's request.
//!
//! Invariants: no panic; after every event the client's output is whole SSE events (never
//! half an event), and all of it is events whose data is JSON (or `[DONE]`).
#![no_main]

use infergate::translate::eventstream::{decode_frame, encode_frame};
use infergate::translate::{for_each_event, Bridge, SseScanner, StreamTranslator};
use infergate::wire::WireApi;
use infergate_fuzz::{assert_client_sse, wire};
use libfuzzer_sys::fuzz_target;

/// Feeds one event; `false` when the translator refused it (the stream ends there).
fn push(t: &mut dyn StreamTranslator, name: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) -> bool {
    let ok = t.push_event(name, data, out).is_ok();
    assert!(
        out.is_empty() || out.ends_with(b"\n\n"),
        "a translator appended part of an event: {:?}",
        String::from_utf8_lossy(&out[out.len().saturating_sub(200)..])
    );
    ok
}

fn relay_sse(t: &mut dyn StreamTranslator, stream: &[u8], step: usize, out: &mut Vec<u8>) -> bool {
    let mut scanner = SseScanner::new();
    let mut buf = Vec::new();
    let mut scratch = Vec::new();
    for read in stream.chunks(step) {
        buf.extend_from_slice(read);
        let n = scanner.scan(&buf);
        let mut ok = true;
        let _ = for_each_event(&buf[..n], &mut scratch, |name, data| {
            if ok {
                ok = push(t, name, data, out);
            }
            Ok(())
        });
        if !ok {
            return false;
        }
        buf.drain(..n);
        scanner.consumed(n);
    }
    // The body ended: what is left is the last event, as the relay treats a complete body.
    let mut ok = true;
    let _ = for_each_event(&buf, &mut scratch, |name, data| {
        if ok {
            ok = push(t, name, data, out);
        }
        Ok(())
    });
    ok
}

fn relay_aws(t: &mut dyn StreamTranslator, stream: &[u8], out: &mut Vec<u8>) -> bool {
    // The SSE text gives the events; each becomes one frame.
    let mut frames = Vec::new();
    let mut scratch = Vec::new();
    let _ = for_each_event(stream, &mut scratch, |name, data| {
        let name = std::str::from_utf8(name.unwrap_or_default()).unwrap_or("");
        match name.strip_prefix("exception:") {
            Some(kind) => encode_frame(
                &[(":message-type", "exception"), (":exception-type", kind)],
                data,
                &mut frames,
            ),
            None => encode_frame(
                &[
                    (":message-type", "event"),
                    (":event-type", name),
                    (":content-type", "application/json"),
                ],
                data,
                &mut frames,
            ),
        }
        Ok(())
    });
    let mut at = 0;
    let mut name = Vec::new();
    while let Ok(Some((frame, used))) = decode_frame(&frames[at..]) {
        name.clear();
        if frame.message_type() == Some("exception") {
            name.extend_from_slice(b"exception:");
            name.extend_from_slice(frame.exception_type().unwrap_or("unknown").as_bytes());
        } else {
            name.extend_from_slice(frame.event_type().unwrap_or("").as_bytes());
        }
        if !push(t, Some(&name), frame.payload(), out) {
            return false;
        }
        at += used;
    }
    assert_eq!(at, frames.len(), "every encoded frame decodes");
    true
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (pick, flags, rest) = (data[0], data[1], &data[2..]);
    let (stream, request) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (
            rest,
            &b"{\"model\":\"m\",\"input\":\"hi\",\"metadata\":{\"k\":\"v\"}}"[..],
        ),
    };
    let bridge = Bridge::new(wire(pick), wire(pick / 5));
    let Ok(Some(mut t)) = bridge.stream("client-model", flags & 1 == 1, request) else {
        return;
    };
    let mut out = Vec::new();
    let step = usize::from(flags >> 1) + 1;
    let _whole = if bridge.provider == WireApi::Converse {
        relay_aws(t.as_mut(), stream, &mut out)
    } else {
        relay_sse(t.as_mut(), stream, step, &mut out)
    };
    t.finish(&mut out);
    let _ = (t.usage(), t.stop_reason());
    assert_client_sse(&out, "translated stream");
});
