//! The AWS event-stream frame decoder (`translate::eventstream::decode_frame`) that reads
//! Bedrock's `converse-stream` answers.
//!
//! The first input byte picks the mode: odd means "fix the CRCs", so that the fuzzer gets
//! past the two checksums into the lengths and headers (the input is cut into frames by its
//! own length fields, clamped to what is left, and both CRCs are recomputed).
//!
//! Invariants: no panic; a frame uses at least 16 bytes and at most the buffer; every shorter
//! prefix of a whole frame is "incomplete" (never an error: a frame split across reads must
//! wait for the rest); a frame with only string headers encodes back to the same bytes.
#![no_main]

use infergate::translate::eventstream::{decode_frame, encode_frame, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// Rewrites `buf` into frames whose lengths fit and whose CRCs hold.
fn fix_frames(buf: &mut [u8]) {
    let mut at = 0;
    while buf.len() - at >= 16 {
        let rest = &mut buf[at..];
        let want = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let total = want.clamp(16, rest.len());
        let headers = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let headers = headers % (total - 16 + 1);
        rest[0..4].copy_from_slice(&(total as u32).to_be_bytes());
        rest[4..8].copy_from_slice(&(headers as u32).to_be_bytes());
        let prelude = crc32fast::hash(&rest[0..8]);
        rest[8..12].copy_from_slice(&prelude.to_be_bytes());
        let message = crc32fast::hash(&rest[..total - 4]);
        rest[total - 4..total].copy_from_slice(&message.to_be_bytes());
        at += total;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut buf = input.to_vec();
    if mode & 1 == 1 {
        fix_frames(&mut buf);
    }
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let Ok(Some((frame, used))) = decode_frame(rest) else {
            break;
        };
        assert!(
            (16..=rest.len()).contains(&used),
            "frame of {used} bytes in {}",
            rest.len()
        );
        assert!(frame.payload().len() <= used - 16);
        for cut in [used - 1, used / 2, 12, 11, 0] {
            match decode_frame(&rest[..cut.min(used - 1)]) {
                Ok(None) => {}
                other => panic!("prefix of {cut} of a {used}-byte frame: {other:?}"),
            }
        }
        let mut strings = Vec::new();
        let mut only_strings = true;
        for (name, value) in frame.headers() {
            match value {
                HeaderValue::String(s) => strings.push((name, s)),
                _ => only_strings = false,
            }
        }
        let _ = (
            frame.message_type(),
            frame.event_type(),
            frame.exception_type(),
        );
        let _ = frame.content_type();
        if only_strings {
            let mut again = Vec::new();
            encode_frame(&strings, frame.payload(), &mut again);
            assert_eq!(again, &rest[..used], "re-encoded frame differs");
        }
        at += used;
    }
});
