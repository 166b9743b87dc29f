//! Every request translator, through `translate::Bridge::request` as the forward phase calls
//! it: the first byte picks the client and provider formats (all 25 pairs, including those no
//! route makes, which must be refused), the rest is the client's body.
//!
//! Invariants: no panic; a translated body is one JSON object.
#![no_main]

use infergate::translate::Bridge;
use infergate_fuzz::{assert_json, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let bridge = Bridge::new(wire(pick), wire(pick / 5));
    let Ok(out) = bridge.request(body, "upstream-model") else {
        return;
    };
    if !bridge.is_passthrough() {
        assert_json(&out, "translated request");
        assert!(out.first() == Some(&b'{'), "a request body is an object");
    }
});
