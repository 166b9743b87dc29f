//! The SSE stage of the relay: `SseScanner` finds where whole events end in a provider's
//! stream (and reads usage, finish reason and `[DONE]` as they pass), `for_each_event` splits
//! the forwarded region into events for a translator.
//!
//! Invariants: no panic; the scanner never points past its buffer; what the client is
//! forwarded is a prefix of the stream; and how the stream is split into reads changes
//! nothing: the same events, usage, finish reason and `[DONE]` as one read of all of it.
#![no_main]

use infergate::translate::{for_each_event, SseScanner};
use infergate::wire::{FinishReason, Usage};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Seen {
    forwarded: Vec<u8>,
    events: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    count: u64,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    done: bool,
}

/// Relays `stream` read `step` bytes at a time (all at once when 0), as the relay does:
/// scan, forward the whole events, drop them from the buffer.
fn relay(stream: &[u8], step: usize) -> Seen {
    let mut scanner = SseScanner::new();
    let mut buf = Vec::new();
    let mut forwarded = Vec::new();
    let mut events = Vec::new();
    let mut scratch = Vec::new();
    let reads: Vec<&[u8]> = if step == 0 {
        vec![stream]
    } else {
        stream.chunks(step).collect()
    };
    for read in reads {
        buf.extend_from_slice(read);
        let boundary = scanner.scan(&buf);
        assert!(
            boundary <= buf.len(),
            "boundary {boundary} past {} bytes",
            buf.len()
        );
        let region = &buf[..boundary];
        let split = for_each_event(region, &mut scratch, |name, data| {
            events.push((name.map(<[u8]>::to_vec), data.to_vec()));
            Ok(())
        });
        assert!(split.is_ok());
        forwarded.extend_from_slice(region);
        buf.drain(..boundary);
        scanner.consumed(boundary);
    }
    assert!(
        stream.starts_with(&forwarded),
        "forwarded bytes are the stream's prefix"
    );
    Seen {
        forwarded,
        events,
        count: scanner.events(),
        usage: scanner.usage(),
        finish: scanner.finish_reason(),
        done: scanner.saw_done(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let whole = relay(stream, 0);
    let step = usize::from(split % 64) + 1;
    let pieces = relay(stream, step);
    assert_eq!(whole, pieces, "read in {step}-byte pieces");
});
