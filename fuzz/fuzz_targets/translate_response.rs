//! Every answer translator, through `translate::Bridge` as the reply phase calls it: a
//! provider's whole 2xx answer (`Bridge::response`), its error answer (`Bridge::error`), and
//! a cached answer replayed as a stream (`replay_as_stream`).
//!
//! Input: byte 0 picks the pair, bytes 1-2 the status, the rest is split at the first NUL
//! into the provider's body and the client's request (which a Responses answer echoes).
//!
//! Invariants: no panic; a translated answer is JSON; a translated error is JSON whenever a
//! translation happened; a replayed stream is whole SSE events with JSON data.
#![no_main]

use infergate::translate::{replay_as_stream, Bridge};
use infergate::wire::WireApi;
use infergate_fuzz::{assert_client_sse, assert_json, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (pick, status, rest) = (data[0], u16::from_be_bytes([data[1], data[2]]), &data[3..]);
    let (body, request) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let bridge = Bridge::new(wire(pick), wire(pick / 5));
    if let Ok(t) = bridge.response(body, "client-model", request) {
        if !bridge.is_passthrough() {
            assert_json(&t.body, "translated answer");
        }
    }
    let (_, error) = bridge.error(status, Some("ValidationException"), body);
    let translated = !bridge.is_passthrough()
        && (bridge.client == WireApi::Messages
            || matches!(
                bridge.provider,
                WireApi::Messages | WireApi::Gemini | WireApi::Converse
            ));
    if translated {
        assert_json(&error, "translated error");
    }
    if let Some(stream) = replay_as_stream(bridge.client, body, pick & 0x80 != 0) {
        assert_client_sse(&stream, "replayed stream");
    }
});
