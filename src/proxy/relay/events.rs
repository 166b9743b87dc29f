//! Event stage: finds where the provider's last complete event ends, so that only whole
//! events go on to the client. That is what lets a stream that fails mid-way still end with
//! a well-formed error event instead of half an event.
//!
//! SSE events end at a blank line ([`SseScanner`], which also reads the usage and finish
//! reason as events pass). AWS event-stream frames carry their own length and are found when
//! they are decoded, one decode per frame ([`EventFraming::each_event`]).

use super::UpstreamFrames;
use crate::translate::eventstream::decode_frame;
use crate::translate::{for_each_event, SseScanner, TranslateError};
use crate::wire::{FinishReason, Usage};

/// The provider's event framing over the payload not yet forwarded, with what it saw so far.
#[derive(Debug)]
pub(super) struct EventFraming {
    frames: UpstreamFrames,
    scanner: SseScanner,
    /// The joined `data:` lines of one SSE event, or the name of one AWS message: reused.
    scratch: Vec<u8>,
}

impl EventFraming {
    /// Event framing for a provider that frames its events as `frames`.
    pub(super) fn new(frames: UpstreamFrames) -> Self {
        Self {
            frames,
            scanner: SseScanner::new(),
            scratch: Vec::new(),
        }
    }

    /// How many leading bytes of `payload` (everything not yet forwarded) are whole events:
    /// all of it once the body is `complete`, unless a malformed SSE event stops them (see
    /// [`Self::malformed`]). For AWS frames all of it too: the frames are found when
    /// [`Self::each_event`] decodes them.
    pub(super) fn whole(&mut self, payload: &[u8], complete: bool) -> usize {
        let boundary = match self.frames {
            UpstreamFrames::Sse => self.scanner.scan(payload),
            UpstreamFrames::AwsEventStream => payload.len(),
        };
        if complete && self.malformed().is_none() {
            payload.len()
        } else {
            boundary
        }
    }

    /// The failure kind when an SSE event after the whole ones is malformed (not UTF-8, or
    /// broken framing): the stream goes no further than them.
    pub(super) fn malformed(&self) -> Option<&'static str> {
        self.scanner.malformed()
    }

    /// Calls `f(name, data)` for each event in `region` (what [`Self::whole`] counted); returns
    /// the bytes used. An AWS frame cut short at the end waits for more bytes, unless the
    /// body is `complete` (then it is truncated). The error is the failure kind.
    pub(super) fn each_event(
        &mut self,
        region: &[u8],
        complete: bool,
        f: impl FnMut(Option<&[u8]>, &[u8]) -> Result<(), TranslateError>,
    ) -> Result<usize, &'static str> {
        match self.frames {
            UpstreamFrames::Sse => for_each_event(region, &mut self.scratch, f)
                .map(|()| region.len())
                .map_err(|_| "untranslatable_event"),
            UpstreamFrames::AwsEventStream => {
                for_each_aws_frame(region, complete, &mut self.scratch, f)
            }
        }
    }

    /// The first `n` bytes of the payload were forwarded and removed from the buffer.
    pub(super) fn consumed(&mut self, n: usize) {
        self.scanner.consumed(n);
    }

    /// Complete SSE events seen (the next `sequence_number` of a Responses stream).
    pub(super) fn events(&self) -> u64 {
        self.scanner.events()
    }

    /// Usage, if an SSE event reported it.
    pub(super) fn usage(&self) -> Option<Usage> {
        self.scanner.usage()
    }

    /// The last finish reason an SSE event carried.
    pub(super) fn finish_reason(&self) -> Option<FinishReason> {
        self.scanner.finish_reason()
    }
}

/// Calls `f(name, payload)` for each whole AWS event-stream message at the start of
/// `region`; the name is the `:event-type`, or `exception:<type>` for an exception message
/// (built in `name`). Returns the bytes used: a partial message at the end waits for more
/// bytes, unless the body is `complete` (then it is a truncated message).
fn for_each_aws_frame(
    region: &[u8],
    complete: bool,
    name: &mut Vec<u8>,
    mut f: impl FnMut(Option<&[u8]>, &[u8]) -> Result<(), TranslateError>,
) -> Result<usize, &'static str> {
    let mut at = 0;
    while let Some(rest) = region.get(at..).filter(|r| !r.is_empty()) {
        let (frame, used) = match decode_frame(rest) {
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
        f(Some(name), frame.payload()).map_err(|_| "untranslatable_event")?;
        at += used;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::encode_frame;

    fn aws(kind: &str, payload: &[u8], out: &mut Vec<u8>) {
        encode_frame(
            &[(":message-type", "event"), (":event-type", kind)],
            payload,
            out,
        );
    }

    /// Each event's name and data.
    type Seen = Vec<(Vec<u8>, Vec<u8>)>;

    fn collect(
        ev: &mut EventFraming,
        region: &[u8],
        complete: bool,
    ) -> (Result<usize, &'static str>, Seen) {
        let mut seen = Vec::new();
        let used = ev.each_event(region, complete, |name, data| {
            seen.push((name.unwrap_or_default().to_vec(), data.to_vec()));
            Ok(())
        });
        (used, seen)
    }

    #[test]
    fn a_partial_sse_event_waits_for_its_blank_line() {
        let mut ev = EventFraming::new(UpstreamFrames::Sse);
        let first = b"event: a\ndata: {\"x\":1}\n\n";
        let mut buf = first.to_vec();
        buf.extend_from_slice(b"data: {\"fin");
        assert_eq!(ev.whole(&buf, false), first.len());
        // The relay forwards and removes the whole event; the partial one stays.
        buf.drain(..first.len());
        ev.consumed(first.len());
        // More bytes of the same event, split at every offset: it waits for its blank line.
        let rest = b"ish_reason\":\"stop\"}\n\n";
        for (k, byte) in rest.iter().enumerate() {
            buf.push(*byte);
            let want = if k + 1 == rest.len() { buf.len() } else { 0 };
            assert_eq!(ev.whole(&buf, false), want, "after {} bytes", k + 1);
        }
        assert_eq!(ev.events(), 2);
        assert_eq!(ev.finish_reason(), Some(FinishReason::EndTurn));
    }

    #[test]
    fn a_complete_body_forwards_even_a_partial_sse_event() {
        let mut ev = EventFraming::new(UpstreamFrames::Sse);
        let buf = b"data: 1\n\ndata: 2";
        assert_eq!(ev.whole(buf, true), buf.len());
    }

    #[test]
    fn the_scanner_follows_what_was_consumed() {
        let mut ev = EventFraming::new(UpstreamFrames::Sse);
        let mut buf = b"data: 1\n\ndata: 2".to_vec();
        let n = ev.whole(&buf, false);
        buf.drain(..n);
        ev.consumed(n);
        buf.extend_from_slice(b"\n\n");
        assert_eq!(ev.whole(&buf, false), buf.len());
        assert_eq!(ev.events(), 2);
    }

    #[test]
    fn sse_events_are_handed_over_with_their_names_and_joined_data() {
        let mut ev = EventFraming::new(UpstreamFrames::Sse);
        let region = b"event: e\ndata: a\ndata: b\n\ndata: c\n\n";
        let (used, seen) = collect(&mut ev, region, false);
        assert_eq!(used, Ok(region.len()));
        assert_eq!(seen[0], (b"e".to_vec(), b"a\nb".to_vec()));
        assert_eq!(seen[1], (Vec::new(), b"c".to_vec()));
        let failed = ev.each_event(region, false, |_, _| {
            Err(TranslateError::invalid("test", "bad"))
        });
        assert_eq!(failed, Err("untranslatable_event"));
    }

    #[test]
    fn aws_frames_are_whole_and_a_partial_one_waits() {
        let mut ev = EventFraming::new(UpstreamFrames::AwsEventStream);
        let mut buf = Vec::new();
        aws("messageStart", b"{\"a\":1}", &mut buf);
        aws("contentBlockDelta", b"{}", &mut buf);
        let whole = buf.len();
        aws("messageStop", b"{}", &mut buf);
        buf.truncate(buf.len() - 3);
        assert_eq!(ev.whole(&buf, false), buf.len());
        let (used, seen) = collect(&mut ev, &buf, false);
        assert_eq!(used, Ok(whole));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (b"messageStart".to_vec(), b"{\"a\":1}".to_vec()));
        // The partial frame is at the front once the whole ones are consumed: still waits.
        let rest = &buf[whole..];
        for end in 0..=rest.len() {
            assert_eq!(collect(&mut ev, &rest[..end], false).0, Ok(0));
        }
    }

    #[test]
    fn a_truncated_aws_frame_at_the_end_of_the_body_fails() {
        let mut ev = EventFraming::new(UpstreamFrames::AwsEventStream);
        let mut buf = Vec::new();
        aws("messageStart", b"{}", &mut buf);
        let whole = buf.len();
        aws("messageStop", b"{}", &mut buf);
        buf.truncate(buf.len() - 1);
        let (used, seen) = collect(&mut ev, &buf, true);
        assert_eq!(used, Err("malformed_frame"));
        // The whole frame before it was still handed over.
        assert_eq!(seen.len(), 1);
        assert_eq!(collect(&mut ev, &buf[..whole], true).0, Ok(whole));
    }

    #[test]
    fn a_corrupt_aws_frame_fails_and_an_exception_is_named() {
        let mut ev = EventFraming::new(UpstreamFrames::AwsEventStream);
        let mut buf = Vec::new();
        aws("messageStart", b"{}", &mut buf);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(collect(&mut ev, &buf, false).0, Err("malformed_frame"));

        let mut buf = Vec::new();
        encode_frame(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            b"{\"message\":\"slow down\"}",
            &mut buf,
        );
        let (used, seen) = collect(&mut ev, &buf, false);
        assert_eq!(used, Ok(buf.len()));
        assert_eq!(seen[0].0, b"exception:throttlingException");
    }
}
