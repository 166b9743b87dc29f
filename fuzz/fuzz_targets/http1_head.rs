//! The HTTP/1.1 request head parser the server runs on every read (`http::server::parse_head`),
//! then what the phases ask of a head (framing, keep-alive, path, headers), and the chunked
//! body after it when the head says so.
//!
//! Invariants: no panic; a parsed head is at most the input and the head limit, ends in a
//! blank line, and agrees with `RequestHead::parse`; every shorter prefix of a valid head
//! is "incomplete" (never an error: the server parses each read, so how TCP splits a head
//! must not change the answer).
#![no_main]

use bytes::BytesMut;
use infergate::http::{BodyLength, ChunkedDecoder, RequestHead};
use infergate_fuzz::{default_limits, small_limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits for odd lengths, so that both limit paths are reached from one corpus.
    let limits = if data.len() % 2 == 1 {
        small_limits()
    } else {
        default_limits()
    };
    let mut buf = BytesMut::from(data);
    let Ok(Some(head)) = infergate::fuzzing::parse_head(&mut buf, &limits) else {
        return;
    };
    let n = data.len() - buf.len();
    assert!(
        n <= limits.max_header_bytes,
        "head of {n} bytes over the limit"
    );
    let raw = &data[..n];
    assert!(raw.ends_with(b"\r\n\r\n"), "a head ends with a blank line");
    assert!(head.headers.len() <= limits.max_headers);

    // Whatever prefix of the head a read delivered, the server waits for more.
    for cut in [n - 1, n / 2, n / 3, 1] {
        let mut part = BytesMut::from(&data[..cut]);
        match infergate::fuzzing::parse_head(&mut part, &limits) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("prefix of {cut} of a {n}-byte head parsed as complete"),
            Err(e) => panic!("prefix of {cut} of a valid {n}-byte head refused: {e}"),
        }
    }

    // The tools' parser reads the same head (it has room for 64 headers).
    if head.headers.len() <= 64 {
        let again =
            RequestHead::parse(raw).expect("RequestHead::parse reads a head the server read");
        assert_eq!(again.method, head.method);
        assert_eq!(again.target(), head.target());
        assert_eq!(again.version, head.version);
        assert_eq!(again.headers.len(), head.headers.len());
    }

    let path = head.path();
    assert!(head.target().starts_with(path));
    let _ = infergate::wire::Endpoint::from_path(path);
    let _ = head.wants_keep_alive();
    for (name, value) in head.headers.iter() {
        assert!(!name.is_empty(), "header names are tokens");
        assert!(value.len() <= n);
        assert_eq!(head.headers.get(name).is_some(), true);
    }
    let _ = head.headers.get_str("content-type");
    let _ = head.headers.has_token("connection", "close");

    if let Ok(BodyLength::Chunked) = head.body_framing() {
        let body = &data[n..];
        let mut decoder = ChunkedDecoder::new();
        let mut payload = 0usize;
        if let Ok(used) = decoder.feed(body, |d| payload += d.len()) {
            assert!(used <= body.len());
            assert!(payload <= used, "decoded more than was read");
        }
    }
});
