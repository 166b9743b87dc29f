//! Sink stage: whole events go to the client as HTTP chunks, as they are (passthrough) or
//! translated into the client's dialect; the sink keeps the optional capture for the cache,
//! counts what the client got, and ends the stream: a terminal chunk, or after a provider
//! failure the translator's own ending or an error event in the client's dialect.

use std::time::Instant;

use monoio::buf::IoBuf;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use super::events::EventFraming;
use super::{RelayEnd, RelayResult, PREFIX};
use crate::translate::StreamTranslator;
use crate::wire::WireApi;

/// Why forwarding stopped before the end of the body.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// Writing to the client failed.
    ClientGone,
    /// The provider's stream could not be relayed (the failure kind).
    Failed(&'static str),
}

/// What the client gets: the provider's events as they are, or translated.
enum Mode {
    Passthrough,
    Translate(Box<dyn StreamTranslator>),
}

/// The client side of a relayed stream.
pub(super) struct Sink<'a, W> {
    out: ChunkWriter<'a, W>,
    mode: Mode,
    /// Translated events not yet sent, behind `PREFIX` bytes for the chunk size line.
    pending: Vec<u8>,
    /// The start of the next event while a passthrough chunk is written: reused.
    carry: Vec<u8>,
    client_wire: WireApi,
}

impl<'a, W: AsyncWriteRent> Sink<'a, W> {
    /// A sink writing to `client`, translating with `translator` if there is one, keeping a
    /// copy of what the client gets in `capture` if there is one.
    pub(super) fn new(
        client: W,
        translator: Option<Box<dyn StreamTranslator>>,
        capture: Option<&'a mut Vec<u8>>,
        client_wire: WireApi,
    ) -> Self {
        let (mode, pending) = match translator {
            Some(t) => (Mode::Translate(t), vec![0u8; PREFIX]),
            None => (Mode::Passthrough, Vec::new()),
        };
        Self {
            out: ChunkWriter {
                client,
                capture,
                bytes_out: 0,
                head_sent_at: None,
            },
            mode,
            pending,
            carry: Vec::new(),
            client_wire,
        }
    }

    /// Writes the response head (chunked framing); notes when it went out.
    pub(super) async fn head(&mut self, head: Vec<u8>) -> Result<(), Stop> {
        let (res, _) = self.out.client.write_all(head).await;
        res.map_err(|_| Stop::ClientGone)?;
        self.out.head_sent_at = Some(Instant::now());
        Ok(())
    }

    /// Sends the whole events at the start of `buf[PREFIX..]` (the payload not yet
    /// forwarded) and removes them; a partial event stays. Once the body is `complete`,
    /// everything goes, and a translator ends its stream.
    pub(super) async fn forward(
        &mut self,
        buf: &mut Vec<u8>,
        events: &mut EventFraming,
        complete: bool,
    ) -> Result<(), Stop> {
        let n = events.whole(buf.get(PREFIX..).unwrap_or_default(), complete);
        // A malformed event ends the stream once the whole events before it are sent.
        let malformed = events.malformed();
        if matches!(self.mode, Mode::Passthrough) {
            self.pass(buf, events, n).await?;
        } else {
            self.translate(buf, events, n, complete && malformed.is_none())?;
            self.out.send(&mut self.pending).await?;
            self.pending.truncate(PREFIX);
        }
        malformed.map_or(Ok(()), |kind| Err(Stop::Failed(kind)))
    }

    /// Translates the events in the first `n` payload bytes into `pending` and removes them
    /// from `buf` (an AWS frame cut short stays); once the body is `complete`, the translator
    /// ends the client's stream. On failure, what was translated before stays in `pending`.
    fn translate(
        &mut self,
        buf: &mut Vec<u8>,
        events: &mut EventFraming,
        n: usize,
        complete: bool,
    ) -> Result<(), Stop> {
        let Mode::Translate(t) = &mut self.mode else {
            return Ok(());
        };
        if n > 0 {
            let region = buf.get(PREFIX..PREFIX + n).unwrap_or_default();
            let pending = &mut self.pending;
            let used = events
                .each_event(region, complete, |name, data| {
                    t.push_event(name, data, pending)
                })
                .map_err(Stop::Failed)?;
            buf.drain(PREFIX..PREFIX + used);
            events.consumed(used);
        }
        if complete {
            t.finish(&mut self.pending);
        }
        Ok(())
    }

    /// Sends the first `n` payload bytes as they are, written from `buf` itself: the size
    /// line goes into the prefix, and only the partial event after them is set aside.
    async fn pass(
        &mut self,
        buf: &mut Vec<u8>,
        events: &mut EventFraming,
        n: usize,
    ) -> Result<(), Stop> {
        if n == 0 {
            return Ok(());
        }
        self.carry.clear();
        self.carry
            .extend_from_slice(buf.get(PREFIX + n..).unwrap_or_default());
        buf.truncate(PREFIX + n);
        self.out.send(buf).await?;
        buf.truncate(PREFIX);
        buf.extend_from_slice(&self.carry);
        events.consumed(n);
        Ok(())
    }

    /// Ends a stream whose body came whole: the terminal chunk.
    pub(super) async fn end(self, upstream_reusable: bool, events: &EventFraming) -> RelayResult {
        let Self { mut out, mode, .. } = self;
        let (res, _) = out.client.write_all(&b"0\r\n\r\n"[..]).await;
        let end = match res {
            Ok(_) => RelayEnd::Complete { upstream_reusable },
            Err(_) => RelayEnd::ClientGone,
        };
        let (usage, finish_reason) = match &mode {
            // A guarded passthrough stream has a translator that reads no usage itself.
            Mode::Translate(t) => (
                t.usage().or_else(|| events.usage()),
                t.stop_reason().or_else(|| events.finish_reason()),
            ),
            Mode::Passthrough => (events.usage(), events.finish_reason()),
        };
        out.result(end, usage, finish_reason)
    }

    /// Ends the relay for `stop`: the client went away, or the provider failed.
    pub(super) async fn stop(self, stop: Stop, events: &EventFraming) -> RelayResult {
        match stop {
            Stop::ClientGone => {
                self.out
                    .result(RelayEnd::ClientGone, events.usage(), events.finish_reason())
            }
            Stop::Failed(kind) => self.fail(kind, events).await,
        }
    }

    /// Ends the client's stream after a provider failure: events already translated go out
    /// first, then the translator's own ending, or else an error event in the client's
    /// format. A partial upstream event is dropped: the client never sees half an event.
    pub(super) async fn fail(self, kind: &'static str, events: &EventFraming) -> RelayResult {
        tracing::warn!(
            kind,
            "provider stream failed mid-way; ending the client stream with an error event"
        );
        let Self {
            mut out,
            mode,
            mut pending,
            client_wire,
            ..
        } = self;
        pending.resize(pending.len().max(PREFIX), 0);
        let usage = match mode {
            Mode::Translate(mut t) => {
                t.finish(&mut pending);
                t.usage()
            }
            Mode::Passthrough => {
                crate::translate::stream_error_event(
                    &mut pending,
                    client_wire,
                    kind,
                    events.events(),
                );
                None
            }
        };
        let len = pending.len() - PREFIX;
        let start = if len > 0 {
            let start = write_size_line(&mut pending, len);
            pending.extend_from_slice(b"\r\n");
            start
        } else {
            PREFIX
        };
        pending.extend_from_slice(b"0\r\n\r\n");
        let (res, _) = out.client.write_all(pending.slice(start..)).await;
        let end = match res {
            Ok(_) => RelayEnd::UpstreamFailed(kind),
            Err(_) => RelayEnd::ClientGone,
        };
        out.bytes_out += len as u64;
        out.result(end, usage, None)
    }
}

/// Writes HTTP chunks to the client and keeps the count (and the copy) of what it got.
struct ChunkWriter<'a, W> {
    client: W,
    capture: Option<&'a mut Vec<u8>>,
    bytes_out: u64,
    head_sent_at: Option<Instant>,
}

impl<W: AsyncWriteRent> ChunkWriter<'_, W> {
    /// Sends `buf[PREFIX..]` as one chunk, its size line written into the prefix (no copy);
    /// nothing when it is empty. `buf` comes back as it was.
    async fn send(&mut self, buf: &mut Vec<u8>) -> Result<(), Stop> {
        let len = buf.len().saturating_sub(PREFIX);
        if len == 0 {
            return Ok(());
        }
        let start = write_size_line(buf, len);
        buf.extend_from_slice(b"\r\n");
        let (res, slice) = self
            .client
            .write_all(std::mem::take(buf).slice(start..))
            .await;
        *buf = slice.into_inner();
        buf.truncate(PREFIX + len);
        res.map_err(|_| Stop::ClientGone)?;
        self.bytes_out += len as u64;
        if let Some(c) = self.capture.as_deref_mut() {
            // Only when the answer will be cached: the stream is kept to store it whole.
            c.extend_from_slice(buf.get(PREFIX..).unwrap_or_default());
        }
        Ok(())
    }

    /// What the relay reports, once the stream ended as `end`.
    fn result(
        self,
        end: RelayEnd,
        usage: Option<crate::wire::Usage>,
        finish_reason: Option<crate::wire::FinishReason>,
    ) -> RelayResult {
        RelayResult {
            end,
            bytes_out: self.bytes_out,
            usage,
            finish_reason,
            head_sent_at: self.head_sent_at,
        }
    }
}

/// Writes the hex size line right before `out[PREFIX..]`; returns where the chunk starts.
fn write_size_line(out: &mut [u8], len: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.leading_zeros()).div_ceil(4) as usize).max(1);
    // The prefix holds 14 hex digits: chunks of up to 2^56 bytes.
    let Some(start) = (PREFIX - 2).checked_sub(digits) else {
        return PREFIX;
    };
    if let Some(line) = out.get_mut(start..PREFIX) {
        let (hex, crlf) = line.split_at_mut(digits);
        for (k, d) in hex.iter_mut().rev().enumerate() {
            *d = HEX.get((len >> (4 * k)) & 15).copied().unwrap_or(b'0');
        }
        crlf.copy_from_slice(b"\r\n");
    }
    start
}

#[cfg(test)]
mod tests {
    use std::io;

    use monoio::buf::IoVecBuf;
    use monoio::BufResult;

    use super::*;
    use crate::block_on_local as run;
    use crate::proxy::relay::UpstreamFrames;
    use crate::translate::TranslateError;
    use crate::wire::{FinishReason, Usage};

    /// A client that records what it was sent; it goes away after `room` bytes.
    struct Recorder {
        got: Vec<u8>,
        writes: usize,
        room: usize,
    }

    impl Recorder {
        fn new() -> Self {
            Self::with_room(usize::MAX)
        }
        fn with_room(room: usize) -> Self {
            Self {
                got: Vec::new(),
                writes: 0,
                room,
            }
        }
    }

    impl AsyncWriteRent for Recorder {
        async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
            if self.got.len() >= self.room {
                return (Err(io::ErrorKind::BrokenPipe.into()), buf);
            }
            // SAFETY: an `IoBuf` is readable for `bytes_init` bytes from `read_ptr`.
            let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
            self.got.extend_from_slice(bytes);
            self.writes += 1;
            (Ok(bytes.len()), buf)
        }
        async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
            (Err(io::ErrorKind::Unsupported.into()), buf)
        }
        async fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        async fn shutdown(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Upper-cases each event's data; `finish` adds an `end` event; `bad` fails.
    struct Upper;

    impl StreamTranslator for Upper {
        fn push_event(
            &mut self,
            _name: Option<&[u8]>,
            data: &[u8],
            out: &mut Vec<u8>,
        ) -> Result<(), TranslateError> {
            if data == b"bad" {
                return Err(TranslateError::invalid("test event", "bad"));
            }
            out.extend_from_slice(b"data: ");
            out.extend(data.iter().map(u8::to_ascii_uppercase));
            out.extend_from_slice(b"\n\n");
            Ok(())
        }
        fn finish(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"data: end\n\n");
        }
        fn usage(&self) -> Option<Usage> {
            Some(Usage {
                output_tokens: 7,
                ..Usage::default()
            })
        }
        fn stop_reason(&self) -> Option<FinishReason> {
            Some(FinishReason::EndTurn)
        }
    }

    fn payload(bytes: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; PREFIX];
        buf.extend_from_slice(bytes);
        buf
    }

    #[test]
    fn size_line_sits_right_before_the_payload() {
        let mut out = vec![0u8; PREFIX];
        out.extend_from_slice(&[b'x'; 300]);
        let start = write_size_line(&mut out, 300);
        assert_eq!(&out[start..PREFIX + 3], b"12c\r\nxxx");
        let mut out = vec![0u8; PREFIX];
        let start = write_size_line(&mut out, 0xffff_ffff);
        assert_eq!(&out[start..PREFIX], b"ffffffff\r\n");
        let start = write_size_line(&mut out, 1);
        assert_eq!(&out[start..PREFIX], b"1\r\n");
    }

    #[test]
    fn passthrough_sends_whole_events_as_one_chunk_and_keeps_the_rest() {
        run(async {
            let mut client = Recorder::new();
            let mut capture = Vec::new();
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, None, Some(&mut capture), WireApi::Chat);
            sink.head(b"HEAD\r\n\r\n".to_vec()).await.unwrap();
            let mut buf = payload(b"data: 1\n\ndata: 2\n\ndata: 3");
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            assert_eq!(&buf[PREFIX..], b"data: 3");
            buf.extend_from_slice(b"\n\n");
            sink.forward(&mut buf, &mut events, true).await.unwrap();
            let r = sink.end(true, &events).await;
            assert!(matches!(
                r.end,
                RelayEnd::Complete {
                    upstream_reusable: true
                }
            ));
            assert_eq!(r.bytes_out, 27);
            assert!(r.head_sent_at.is_some());
            assert_eq!(capture, b"data: 1\n\ndata: 2\n\ndata: 3\n\n");
        });
        let mut client = Recorder::new();
        run(async {
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, None, None, WireApi::Chat);
            let mut buf = payload(b"data: 1\n\ndata: 2\n\ndata: 3");
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            let mut buf = payload(&[b'x'; 0x1f]);
            sink.out.send(&mut buf).await.unwrap();
            sink.end(true, &events).await;
        });
        let mut want = b"12\r\ndata: 1\n\ndata: 2\n\n\r\n1f\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 0x1f]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(client.got, want);
    }

    #[test]
    fn nothing_whole_sends_nothing() {
        let mut client = Recorder::new();
        run(async {
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, None, None, WireApi::Chat);
            let mut buf = payload(b"data: partial");
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            assert_eq!(&buf[PREFIX..], b"data: partial");
        });
        assert_eq!(client.writes, 0);
    }

    #[test]
    fn translated_events_go_out_in_the_clients_dialect() {
        let mut client = Recorder::new();
        let r = run(async {
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, Some(Box::new(Upper)), None, WireApi::Chat);
            let mut buf = payload(b"data: ab\n\ndata: c");
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            assert_eq!(&buf[PREFIX..], b"data: c");
            sink.forward(&mut buf, &mut events, true).await.unwrap();
            sink.end(true, &events).await
        });
        assert_eq!(
            client.got,
            b"a\r\ndata: AB\n\n\r\nb\r\ndata: end\n\n\r\n0\r\n\r\n"
        );
        assert_eq!(r.bytes_out, 10 + 11);
        assert_eq!(r.usage.map(|u| u.output_tokens), Some(7));
        assert_eq!(r.finish_reason, Some(FinishReason::EndTurn));
    }

    #[test]
    fn a_partial_aws_frame_stays_until_the_rest_comes() {
        let mut frames = Vec::new();
        for payload in [&b"one"[..], b"two"] {
            crate::translate::encode_frame(
                &[(":message-type", "event"), (":event-type", "e")],
                payload,
                &mut frames,
            );
        }
        let cut = frames.len() - 5;
        let mut client = Recorder::new();
        run(async {
            let mut events = EventFraming::new(UpstreamFrames::AwsEventStream);
            let mut sink = Sink::new(&mut client, Some(Box::new(Upper)), None, WireApi::Chat);
            let mut buf = payload(&frames[..cut]);
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            assert_eq!(buf[PREFIX..], frames[frames.len() / 2..cut]);
            buf.extend_from_slice(&frames[cut..]);
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            assert_eq!(buf.len(), PREFIX);
        });
        assert_eq!(client.got, b"b\r\ndata: ONE\n\n\r\nb\r\ndata: TWO\n\n\r\n");
    }

    #[test]
    fn an_untranslatable_event_ends_after_what_was_translated_before_it() {
        let mut client = Recorder::new();
        let r = run(async {
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, Some(Box::new(Upper)), None, WireApi::Chat);
            let mut buf = payload(b"data: ok\n\ndata: bad\n\n");
            let stop = sink
                .forward(&mut buf, &mut events, false)
                .await
                .unwrap_err();
            assert_eq!(stop, Stop::Failed("untranslatable_event"));
            sink.stop(stop, &events).await
        });
        assert_eq!(client.got, b"15\r\ndata: OK\n\ndata: end\n\n\r\n0\r\n\r\n");
        assert!(matches!(
            r.end,
            RelayEnd::UpstreamFailed("untranslatable_event")
        ));
        assert_eq!(r.bytes_out, 0x15);
        assert_eq!(r.finish_reason, None);
    }

    /// What an untranslated stream's client gets when the provider fails after `sent`.
    fn failed_passthrough(client_wire: WireApi) -> (Vec<u8>, RelayResult) {
        let mut client = Recorder::new();
        let r = run(async {
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, None, None, client_wire);
            let mut buf = payload(b"data: 1\n\ndata: 2\n\ndata: half");
            sink.forward(&mut buf, &mut events, false).await.unwrap();
            sink.fail("stalled", &events).await
        });
        let sent = b"12\r\ndata: 1\n\ndata: 2\n\n\r\n";
        assert_eq!(&client.got[..sent.len()], sent);
        assert!(matches!(r.end, RelayEnd::UpstreamFailed("stalled")));
        assert!(r.usage.is_none() && r.finish_reason.is_none());
        (client.got[sent.len()..].to_vec(), r)
    }

    fn chunk(event: &str) -> Vec<u8> {
        format!("{:x}\r\n{event}\r\n0\r\n\r\n", event.len()).into_bytes()
    }

    #[test]
    fn the_error_event_is_in_the_clients_dialect() {
        let message = "The provider's stream was interrupted (stalled).";
        let messages = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"{message}\"}}}}\n\n"
        );
        let responses = format!(
            "event: error\ndata: {{\"type\":\"error\",\"code\":\"upstream_stream_interrupted\",\"message\":\"{message}\",\"param\":null,\"sequence_number\":2}}\n\n"
        );
        let chat = format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"upstream_stream_interrupted\"}}}}\n\n"
        );
        for (wire, event) in [
            (WireApi::Messages, messages),
            (WireApi::Responses, responses),
            (WireApi::Chat, chat),
        ] {
            let (ending, r) = failed_passthrough(wire);
            assert_eq!(
                String::from_utf8(ending).unwrap(),
                String::from_utf8(chunk(&event)).unwrap()
            );
            assert_eq!(r.bytes_out, (0x12 + event.len()) as u64);
        }
    }

    #[test]
    fn a_client_gone_mid_stream_is_reported() {
        let mut client = Recorder::with_room(5);
        let r = run(async {
            let mut events = EventFraming::new(UpstreamFrames::Sse);
            let mut sink = Sink::new(&mut client, None, None, WireApi::Chat);
            sink.head(b"HEAD\r\n\r\n".to_vec()).await.unwrap();
            let mut buf =
                payload(b"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n");
            let stop = sink
                .forward(&mut buf, &mut events, false)
                .await
                .unwrap_err();
            assert_eq!(stop, Stop::ClientGone);
            sink.stop(stop, &events).await
        });
        assert!(matches!(r.end, RelayEnd::ClientGone));
        assert_eq!(r.bytes_out, 0);
        // What the provider reported still counts.
        assert_eq!(r.usage.map(|u| u.output_tokens), Some(4));
    }
}
