//! Upstream stage: reads the provider's body and removes its HTTP framing (content-length,
//! chunked, or until close) in place, so the stages after it see only the payload: SSE text
//! or AWS event-stream frames.

use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

use super::{FIRST_READ, MAX_PENDING, MIN_SPARE, PREFIX, READ_SIZE};
use crate::http::ChunkedDecoder;
use crate::upstream::BodyKind;

/// How the upstream body is delimited, with its running state.
#[derive(Debug)]
enum Framing {
    Chunked(ChunkedDecoder),
    /// Payload bytes still expected.
    Length(u64),
    UntilClose,
}

/// The provider's body framing, removed as its bytes arrive; tells when the body is complete
/// and whether the connection can serve another request.
#[derive(Debug)]
pub(super) struct UpstreamFraming {
    framing: Framing,
    /// Where each payload slice of the last chunked read lies in the buffer (offset, length):
    /// kept across reads so that decoding allocates nothing once warm.
    ranges: Vec<(usize, usize)>,
    done: bool,
    /// Nothing but this body came on the connection, and it is still open.
    reusable: bool,
}

impl UpstreamFraming {
    /// The framing of a response whose head said `body`.
    pub(super) fn new(body: BodyKind) -> Self {
        let framing = match body {
            BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new()),
            BodyKind::Length(n) => Framing::Length(n),
            BodyKind::UntilClose => Framing::UntilClose,
            BodyKind::Empty => Framing::Length(0),
        };
        Self {
            done: matches!(framing, Framing::Length(0)),
            framing,
            ranges: Vec::new(),
            reusable: true,
        }
    }

    /// The whole body has been read.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// The body ended cleanly (no bytes after it, no close): the connection can be pooled.
    pub(super) fn is_reusable(&self) -> bool {
        self.done && self.reusable
    }

    /// Removes the framing from the raw bytes `buf[from..]`, in place: `buf` ends with the
    /// payload they carried. Bytes after the end of the body are dropped (and the connection
    /// is not reused). The error is the failure kind.
    pub(super) fn unframe(&mut self, buf: &mut Vec<u8>, from: usize) -> Result<(), &'static str> {
        let got = buf.len().saturating_sub(from);
        if got == 0 {
            return Ok(());
        }
        match &mut self.framing {
            Framing::Chunked(dec) => {
                self.ranges.clear();
                let ranges = &mut self.ranges;
                let base = buf.as_ptr() as usize;
                let raw = buf.get(from..).unwrap_or_default();
                let used = dec
                    .feed(raw, |s| ranges.push((s.as_ptr() as usize - base, s.len())))
                    .map_err(|_| "malformed_chunk")?;
                if used < got {
                    self.reusable = false; // bytes after the terminal chunk
                }
                let mut w = from;
                for &(at, len) in &self.ranges {
                    buf.copy_within(at..at + len, w);
                    w += len;
                }
                buf.truncate(w);
                self.done = dec.is_done();
            }
            Framing::Length(left) => match usize::try_from(*left) {
                Ok(want) if want <= got => {
                    if want < got {
                        self.reusable = false;
                        buf.truncate(from + want);
                    }
                    *left = 0;
                    self.done = true;
                }
                _ => *left -= got as u64,
            },
            Framing::UntilClose => {}
        }
        Ok(())
    }

    /// The provider closed the connection: that ends a body delimited by the close; any
    /// other body was cut short (the error is the failure kind).
    pub(super) fn closed(&mut self) -> Result<(), &'static str> {
        self.reusable = false;
        match self.framing {
            Framing::UntilClose => self.done = true,
            _ if self.done => {}
            _ => return Err("closed"),
        }
        Ok(())
    }
}

/// Reads the provider's next bytes onto the end of `buf`, waiting at most `idle` and never
/// past `deadline`; `Ok(true)` when the provider closed the connection. The error is the
/// failure kind: the bytes not yet forwarded (one partial event) grew too large, the call ran
/// out of time, the connection broke, or the provider went quiet.
pub(super) async fn read_more<R: AsyncReadRent>(
    io: &mut R,
    buf: &mut Vec<u8>,
    deadline: Instant,
    idle: Duration,
) -> Result<bool, &'static str> {
    if buf.len().saturating_sub(PREFIX) > MAX_PENDING {
        return Err("event_too_large");
    }
    if buf.capacity() - buf.len() < MIN_SPARE {
        // Double (a full read says the provider sends faster than we read), within bounds.
        buf.reserve(buf.capacity().clamp(FIRST_READ, READ_SIZE));
    }
    let left = deadline
        .checked_duration_since(Instant::now())
        .ok_or("timeout")?;
    let owned = std::mem::take(buf);
    // At most READ_SIZE per read, whatever the capacity grew to: one read into a doubled
    // buffer could otherwise take megabytes at once, past MAX_PENDING, and an event over
    // the bound would be forwarded whole.
    let (len, end) = (owned.len(), owned.capacity().min(owned.len() + READ_SIZE));
    let read = io.read(owned.slice_mut(len..end));
    // On a stall the buffer goes with the dropped read: the stream ends there anyway.
    let (res, slice) = monoio::time::timeout(left.min(idle), read)
        .await
        .map_err(|_| "stalled")?;
    *buf = slice.into_inner();
    match res {
        Ok(0) => Ok(true),
        Ok(_) => Ok(false),
        Err(_) => {
            buf.truncate(len);
            Err("reset")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider with `left` bytes ready at once (all `x`).
    struct Flood {
        left: usize,
    }

    impl AsyncReadRent for Flood {
        async fn read<T: IoBufMut>(&mut self, mut buf: T) -> monoio::BufResult<usize, T> {
            // A read fills the buffer from its write pointer, as the kernel does.
            let n = self.left.min(buf.bytes_total());
            // SAFETY: `n` bytes fit the buffer; they are written before they count.
            unsafe {
                std::ptr::write_bytes(buf.write_ptr(), b'x', n);
                buf.set_init(n);
            }
            self.left -= n;
            (Ok(n), buf)
        }

        async fn readv<T: monoio::buf::IoVecBufMut>(
            &mut self,
            buf: T,
        ) -> monoio::BufResult<usize, T> {
            (Err(std::io::ErrorKind::Unsupported.into()), buf)
        }
    }

    #[test]
    fn a_read_takes_at_most_read_size_so_one_event_cannot_pass_the_bound() {
        crate::block_on_local(async {
            let mut flood = Flood { left: 64 << 20 };
            let far = Instant::now() + Duration::from_secs(60);
            // A buffer whose capacity grew far past the bound, as a doubling Vec does.
            let mut buf = Vec::with_capacity(32 << 20);
            buf.resize(PREFIX, 0);
            let mut reads = 0;
            let end = loop {
                match read_more(&mut flood, &mut buf, far, Duration::from_secs(60)).await {
                    Ok(closed) => assert!(!closed),
                    Err(kind) => break kind,
                }
                reads += 1;
                assert!(
                    buf.len() - PREFIX <= MAX_PENDING + READ_SIZE,
                    "{}",
                    buf.len()
                );
            };
            assert_eq!(end, "event_too_large");
            assert_eq!(reads, MAX_PENDING / READ_SIZE + 1);
        });
    }

    /// Feeds `raw` to a fresh framing in two reads split at `at`, the way the relay does:
    /// payload kept in the buffer, each read appended after it. Returns the payload.
    fn two_reads(body: BodyKind, raw: &[u8], at: usize) -> (UpstreamFraming, Vec<u8>) {
        let mut f = UpstreamFraming::new(body);
        let mut buf = vec![0u8; PREFIX];
        for piece in [&raw[..at], &raw[at..]] {
            let from = buf.len();
            buf.extend_from_slice(piece);
            f.unframe(&mut buf, from).unwrap();
        }
        (f, buf[PREFIX..].to_vec())
    }

    #[test]
    fn chunked_body_split_at_every_byte_gives_the_same_payload() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        for at in 0..=raw.len() {
            let (f, payload) = two_reads(BodyKind::Chunked, raw, at);
            assert_eq!(payload, b"hello, world", "split at {at}");
            assert!(f.is_done() && f.is_reusable(), "split at {at}");
        }
        let (f, payload) = two_reads(BodyKind::Chunked, raw, raw.len() - 1);
        assert_eq!(payload, b"hello, world");
        assert!(f.is_done());
    }

    #[test]
    fn a_chunked_body_not_yet_ended_is_not_done() {
        let (f, payload) = two_reads(BodyKind::Chunked, b"3\r\nabc\r\n2\r\nd", 4);
        assert_eq!(payload, b"abcd");
        assert!(!f.is_done());
    }

    #[test]
    fn bytes_after_the_terminal_chunk_are_dropped_and_the_connection_not_reused() {
        let (f, payload) = two_reads(BodyKind::Chunked, b"2\r\nok\r\n0\r\n\r\nHTTP/1.1", 3);
        assert_eq!(payload, b"ok");
        assert!(f.is_done() && !f.is_reusable());
    }

    #[test]
    fn malformed_chunk_framing_is_reported() {
        let mut f = UpstreamFraming::new(BodyKind::Chunked);
        let mut buf = vec![0u8; PREFIX];
        buf.extend_from_slice(b"zz\r\n");
        assert_eq!(f.unframe(&mut buf, PREFIX), Err("malformed_chunk"));
        let mut f = UpstreamFraming::new(BodyKind::Chunked);
        let mut buf = vec![0u8; PREFIX];
        buf.extend_from_slice(b"2\nok");
        assert_eq!(f.unframe(&mut buf, PREFIX), Err("malformed_chunk"));
    }

    #[test]
    fn content_length_body_ends_at_its_length() {
        for at in 0..=5 {
            let (f, payload) = two_reads(BodyKind::Length(5), b"hello", at);
            assert_eq!(payload, b"hello");
            assert!(f.is_done() && f.is_reusable());
        }
        let (f, payload) = two_reads(BodyKind::Length(5), b"hello!!", 2);
        assert_eq!(payload, b"hello");
        assert!(f.is_done() && !f.is_reusable());
        let (f, _) = two_reads(BodyKind::Length(5), b"hel", 1);
        assert!(!f.is_done());
    }

    #[test]
    fn an_empty_body_is_done_at_once() {
        let f = UpstreamFraming::new(BodyKind::Empty);
        assert!(f.is_done() && f.is_reusable());
    }

    #[test]
    fn a_close_ends_only_a_body_delimited_by_it() {
        let (mut f, payload) = two_reads(BodyKind::UntilClose, b"data: x\n\n", 3);
        assert_eq!(payload, b"data: x\n\n");
        assert!(!f.is_done());
        assert_eq!(f.closed(), Ok(()));
        assert!(f.is_done() && !f.is_reusable());

        let (mut f, _) = two_reads(BodyKind::Length(10), b"short", 2);
        assert_eq!(f.closed(), Err("closed"));
        let (mut f, _) = two_reads(BodyKind::Chunked, b"2\r\nok\r\n", 2);
        assert_eq!(f.closed(), Err("closed"));
    }
}
