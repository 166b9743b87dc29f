//! The strict `Transfer-Encoding: chunked` decoder (`http::ChunkedDecoder`), which frames
//! request bodies and provider streams.
//!
//! Invariants: no panic; the decoded payload is never longer than the bytes consumed, and
//! those never more than the input; the result does not depend on how the bytes are split
//! into reads (same payload, same end, same error); a payload re-encoded in chunks of any
//! size decodes back to itself.
#![no_main]

use infergate::http::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

/// Decodes `input` fed in pieces of `step` bytes (all at once when 0).
fn decode(
    input: &[u8],
    step: usize,
) -> (Vec<u8>, Result<usize, infergate::http::ChunkedError>, bool) {
    let mut decoder = ChunkedDecoder::new();
    let mut payload = Vec::new();
    let mut at = 0;
    let pieces: Vec<&[u8]> = if step == 0 {
        vec![input]
    } else {
        input.chunks(step).collect()
    };
    for piece in pieces {
        match decoder.feed(piece, |d| payload.extend_from_slice(d)) {
            Ok(used) => {
                assert!(used <= piece.len());
                at += used;
                if decoder.is_done() {
                    break;
                }
                assert_eq!(
                    used,
                    piece.len(),
                    "a decoder that is not done takes every byte"
                );
            }
            Err(e) => return (payload, Err(e), false),
        }
    }
    let done = decoder.is_done();
    (payload, Ok(at), done)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let (whole, whole_end, whole_done) = decode(input, 0);
    if let Ok(used) = whole_end {
        assert!(used <= input.len());
        assert!(
            whole.len() <= used,
            "decoded {} bytes from {used}",
            whole.len()
        );
    }
    let step = usize::from(split % 17) + 1;
    let (pieces, pieces_end, pieces_done) = decode(input, step);
    assert_eq!(whole_end, pieces_end, "split into {step}-byte reads");
    assert_eq!(whole_done, pieces_done);
    if whole_end.is_ok() {
        assert_eq!(whole, pieces, "split into {step}-byte reads");
    }

    // Round trip: the payload (or the input itself, when it wasn't a chunked body) in chunks
    // of `chunk` bytes, with an extension on the first, decodes back to itself.
    let payload = if whole_end.is_ok() { &whole[..] } else { input };
    let chunk = usize::from(split >> 4) + 1;
    let mut encoded = Vec::new();
    for (i, c) in payload.chunks(chunk).enumerate() {
        encoded.extend_from_slice(format!("{:x}", c.len()).as_bytes());
        if i == 0 {
            encoded.extend_from_slice(b" ;name=value");
        }
        encoded.extend_from_slice(b"\r\n");
        encoded.extend_from_slice(c);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\ntrailer: x\r\n\r\nNEXT");
    let (decoded, end, done) = decode(&encoded, 0);
    assert!(done, "a well-formed chunked body ends");
    assert_eq!(
        end,
        Ok(encoded.len() - 4),
        "the bytes after the body are left"
    );
    assert_eq!(decoded, payload);
});
