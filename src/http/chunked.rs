//! An incremental decoder for `Transfer-Encoding: chunked` bodies, strict per RFC 9112 §7.1.
//!
//! It never buffers: it walks the input once and hands out slices of the payload, so the same
//! decoder serves request bodies (copied into one `Bytes`) and upstream streams (forwarded as
//! they are while the payload slices feed the SSE scanner).
//!
//! Strict, because two parsers that frame one byte stream differently are how requests are
//! smuggled past a front proxy: every line ends in CRLF (a bare CR or LF is an error), only
//! whitespace before a `;` may follow the size, extensions and trailers are bounded, and a
//! size has at most 16 hex digits (leading zeros included).

/// A chunked body that does not follow RFC 9112.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    /// Not a hex digit where the chunk size is, or something other than `;` or CRLF after it.
    #[error("invalid chunk size line")]
    BadSize,
    /// A chunk size over 2^40, or with more than 16 digits: no body the gateway accepts gets
    /// near it.
    #[error("chunk size too large")]
    SizeTooLarge,
    /// A line of the framing does not end in CRLF (bare CR, bare LF, or data after the payload).
    #[error("chunk framing without CRLF")]
    BadDelimiter,
    /// A chunk extension longer than [`MAX_EXTENSION`], or with control characters.
    #[error("chunk extension too long or invalid")]
    BadExtension,
    /// Trailer fields longer than [`MAX_TRAILERS`] in all.
    #[error("chunked trailers too large")]
    TrailersTooLarge,
}

/// Longest chunk extension (after the size, up to CRLF) accepted on one chunk.
pub const MAX_EXTENSION: u32 = 1024;
/// Most bytes of trailer fields accepted after the last chunk.
pub const MAX_TRAILERS: u32 = 8 * 1024;
/// Most hex digits in a chunk size, leading zeros included.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the size line.
    Size,
    /// Whitespace after the size: only a `;` may follow.
    SizeSpace,
    /// Inside an extension, until CR.
    Extension,
    /// Saw CR ending the size line; LF must follow.
    SizeLf,
    /// Chunk payload; `remaining` bytes left.
    Data,
    /// Expecting CR after the payload.
    DataCr,
    /// Expecting LF after the payload.
    DataLf,
    /// Start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// Saw CR ending a trailer line; LF must follow.
    TrailerLf,
    /// Saw CR of the final empty line.
    FinalLf,
    /// The terminal chunk and trailers are complete.
    Done,
}

/// The decoder's state between reads.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    remaining: u64,
    /// Bytes of the current extension or of all trailers so far.
    side: u32,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            side: 0,
        }
    }

    /// True once the terminal chunk (and any trailers) have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, calling `on_data` with each payload slice. Returns how many bytes were
    /// consumed: all of `input` unless the body ended inside it (the rest belongs to the next
    /// message).
    pub fn feed<'a>(
        &mut self,
        input: &'a [u8],
        mut on_data: impl FnMut(&'a [u8]),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while let Some(rest) = input.get(i..) {
            let Some(&b) = rest.first() else { break };
            if self.state == State::Data {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                let (data, _) = rest.split_at(take);
                on_data(data);
                self.remaining -= take as u64;
                i += take;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if self.state == State::Done {
                return Ok(i);
            }
            self.step(b)?;
            i += 1;
            if self.state == State::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    /// Advances over one framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size => match hex_value(b) {
                Some(d) => {
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from(d);
                    if self.digits > MAX_SIZE_DIGITS || self.size > (1 << 40) {
                        return Err(ChunkedError::SizeTooLarge);
                    }
                    State::Size
                }
                None if self.digits == 0 => return Err(ChunkedError::BadSize),
                None => match b {
                    b'\r' => State::SizeLf,
                    b';' => self.start_extension(),
                    b' ' | b'\t' => State::SizeSpace,
                    _ => return Err(ChunkedError::BadSize),
                },
            },
            State::SizeSpace => match b {
                b' ' | b'\t' => State::SizeSpace,
                b';' => self.start_extension(),
                _ => return Err(ChunkedError::BadSize),
            },
            State::Extension => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(ChunkedError::BadDelimiter),
                b'\t' | b' '..=b'~' | 0x80..=0xff => {
                    self.side += 1;
                    if self.side > MAX_EXTENSION {
                        return Err(ChunkedError::BadExtension);
                    }
                    State::Extension
                }
                _ => return Err(ChunkedError::BadExtension),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkedError::BadDelimiter);
                }
                self.end_size_line()
            }
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkedError::BadDelimiter),
            },
            State::DataLf => match b {
                b'\n' => self.next_size(),
                _ => return Err(ChunkedError::BadDelimiter),
            },
            State::TrailerStart => match b {
                b'\r' => State::FinalLf,
                b'\n' => return Err(ChunkedError::BadDelimiter),
                _ => self.trailer_byte()?,
            },
            State::TrailerLine => match b {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(ChunkedError::BadDelimiter),
                _ => self.trailer_byte()?,
            },
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return Err(ChunkedError::BadDelimiter),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkedError::BadDelimiter),
            },
            // `feed` handles these two before calling `step`.
            State::Data | State::Done => self.state,
        };
        Ok(())
    }

    fn start_extension(&mut self) -> State {
        self.side = 0;
        State::Extension
    }

    fn trailer_byte(&mut self) -> Result<State, ChunkedError> {
        self.side += 1;
        if self.side > MAX_TRAILERS {
            return Err(ChunkedError::TrailersTooLarge);
        }
        Ok(State::TrailerLine)
    }

    fn next_size(&mut self) -> State {
        self.size = 0;
        self.digits = 0;
        State::Size
    }

    fn end_size_line(&mut self) -> State {
        if self.size == 0 {
            self.side = 0;
            State::TrailerStart
        } else {
            self.remaining = self.size;
            State::Data
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(body: &[u8], split: usize) -> (Vec<u8>, usize, bool) {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let a = d
            .feed(&body[..split], |s| out.extend_from_slice(s))
            .unwrap();
        let b = if d.is_done() {
            0
        } else {
            d.feed(&body[split..], |s| out.extend_from_slice(s))
                .unwrap()
        };
        (out, a + b, d.is_done())
    }

    fn decode(body: &[u8]) -> Result<Vec<u8>, ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        d.feed(body, |s| out.extend_from_slice(s))?;
        assert!(d.is_done(), "not done: {:?}", String::from_utf8_lossy(body));
        Ok(out)
    }

    #[test]
    fn decodes_at_every_split_point() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for split in 0..body.len() {
            let (out, used, done) = decode_split(body, split);
            assert_eq!(out, b"hello, world", "split {split}");
            assert!(done);
            assert_eq!(&body[used..], b"NEXT", "split {split}");
        }
    }

    #[test]
    fn accepts_what_rfc_9112_allows() {
        assert_eq!(decode(b"5 ;a=b\r\nhello\r\n0\r\n\r\n").unwrap(), b"hello");
        assert_eq!(
            decode(b"00005;a=\"q s\"\r\nhello\r\n0;last\r\n\r\n").unwrap(),
            b"hello"
        );
        assert_eq!(decode(b"0\r\n\r\n").unwrap(), b"");
    }

    #[test]
    fn rejects_garbage() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"zz\r\n", |_| {}), Err(ChunkedError::BadSize));
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"2\r\nabX", |_| {}), Err(ChunkedError::BadDelimiter));
        let mut d = ChunkedDecoder::new();
        assert_eq!(
            d.feed(b"ffffffffffffffff\r\n", |_| {}),
            Err(ChunkedError::SizeTooLarge)
        );
    }

    #[test]
    fn rejects_lenient_framing() {
        let cases: &[(&[u8], ChunkedError)] = &[
            // Junk after the size that is not an extension.
            (b"5x\r\nhello\r\n0\r\n\r\n", ChunkedError::BadSize),
            (b"5 x\r\nhello\r\n0\r\n\r\n", ChunkedError::BadSize),
            (b"5 \r\nhello\r\n0\r\n\r\n", ChunkedError::BadSize),
            // Bare LF and bare CR anywhere in the framing.
            (b"5\nhello\r\n0\r\n\r\n", ChunkedError::BadSize),
            (b"5\r\nhello\n0\r\n\r\n", ChunkedError::BadDelimiter),
            (b"5\r\nhello\r0\r\n\r\n", ChunkedError::BadDelimiter),
            (b"5;a\nhello\r\n0\r\n\r\n", ChunkedError::BadDelimiter),
            (b"5\rhello\r\n0\r\n\r\n", ChunkedError::BadDelimiter),
            (b"5\r\nhello\r\n0\r\n\n", ChunkedError::BadDelimiter),
            (b"5\r\nhello\r\n0\r\nx: 1\n\r\n", ChunkedError::BadDelimiter),
            // Sizes: no digits, too many digits.
            (b"\r\n", ChunkedError::BadSize),
            (b";x\r\n", ChunkedError::BadSize),
            (
                b"00000000000000005\r\nhello\r\n0\r\n\r\n",
                ChunkedError::SizeTooLarge,
            ),
            // Control characters in an extension.
            (b"5;a\x00\r\nhello\r\n0\r\n\r\n", ChunkedError::BadExtension),
        ];
        for (body, want) in cases {
            let mut d = ChunkedDecoder::new();
            assert_eq!(
                d.feed(body, |_| {}),
                Err(want.clone()),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        let mut long = b"5;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_EXTENSION as usize + 1));
        long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            ChunkedDecoder::new().feed(&long, |_| {}),
            Err(ChunkedError::BadExtension)
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"x-t: 1\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        assert_eq!(
            ChunkedDecoder::new().feed(&trailers, |_| {}),
            Err(ChunkedError::TrailersTooLarge)
        );
    }
}
