//! Every request translator, structure-aware: `arbitrary` builds request bodies (objects with
//! a `model` whose members, keys and strings are mostly the fields and words the translators
//! branch on: roles, part types, tool shapes) so the fuzzer spends its time past the JSON
//! parse, in the translation itself.
//!
//! Invariants: no panic; a translated body is one JSON object; the Chat hub leg, when there
//! is one, is itself a request the provider leg accepts or refuses without panicking.
#![no_main]

use infergate::translate::Bridge;
use infergate_fuzz::{assert_json, RequestShape, CLIENT_WIRES, WIRES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, RequestShape)| {
    let (client, provider, shape) = input;
    let client = CLIENT_WIRES[usize::from(client) % CLIENT_WIRES.len()];
    let provider = WIRES[usize::from(provider) % WIRES.len()];
    let body = shape.to_bytes();
    let bridge = Bridge::new(client, provider);
    if let Ok(out) = bridge.request(&body, "upstream-model") {
        assert_json(&out, "translated request");
    }
});
