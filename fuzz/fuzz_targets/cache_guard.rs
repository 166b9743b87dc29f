//! The semantic cache's guard (`cache::guard_allows`), which decides whether an answer cached
//! for one prompt may serve a lookalike prompt, on any pair of texts.
//!
//! Input: the two prompts separated by a NUL; a second NUL marks the first as truncated.
//!
//! Invariants: no panic; a prompt always matches itself; the decision is symmetric, as the
//! guard's contract says (a cached answer for `b` serves `a` exactly when one for `a` would
//! serve `b`); a truncated prompt matches only the same text.
#![no_main]

use infergate::cache::guard_allows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `a NUL b`, and a second NUL when `a` was truncated by the embedder.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, rest) = text.split_once('\0').unwrap_or((text, ""));
    let (b, truncated) = match rest.split_once('\0') {
        Some((b, _)) => (b, true),
        None => (rest, false),
    };
    assert!(guard_allows(a, a, false, false).allowed());
    let ab = guard_allows(a, b, truncated, false);
    let ba = guard_allows(b, a, false, truncated);
    assert_eq!(
        ab.allowed(),
        ba.allowed(),
        "asymmetric guard: {a:?} vs {b:?}: {ab:?} / {ba:?}"
    );
    if truncated && a != b && ab.allowed() {
        // Allowed only when the two normalize to the same text: then the reverse holds too.
        assert!(guard_allows(b, a, true, true).allowed());
    }
});
