//! An incremental decoder for `Transfer-Encoding: chunked` bodies.
//!
//! It never buffers: it walks the input once and hands out slices of the payload, so the same
//! decoder serves request bodies (copied into one `Bytes`) and upstream streams (forwarded as
//! they are while the payload slices feed the SSE scanner).

/// A chunked body that does not follow RFC 9112.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    /// Not a hex digit where the chunk size is.
    #[error("invalid chunk size")]
    BadSize,
    /// A chunk size over 2^40: no body the gateway accepts gets near it.
    #[error("chunk size too large")]
    SizeTooLarge,
    /// Missing CRLF after chunk data.
    #[error("missing CRLF after chunk data")]
    BadDelimiter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the size line.
    Size { seen_digit: bool },
    /// After the size: extensions or whitespace until LF.
    SizeLine,
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
    remaining: u64,
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
            state: State::Size { seen_digit: false },
            size: 0,
            remaining: 0,
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
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { seen_digit } => {
                    let digit = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    match digit {
                        Some(d) => {
                            self.size = self.size * 16 + d as u64;
                            if self.size > (1 << 40) {
                                return Err(ChunkedError::SizeTooLarge);
                            }
                            self.state = State::Size { seen_digit: true };
                        }
                        None if seen_digit && b == b'\n' => self.end_size_line(),
                        None if seen_digit && matches!(b, b'\r' | b';' | b' ' | b'\t') => {
                            self.state = State::SizeLine
                        }
                        None => return Err(ChunkedError::BadSize),
                    }
                    i += 1;
                }
                State::SizeLine => {
                    if b == b'\n' {
                        self.end_size_line();
                    }
                    i += 1;
                }
                State::Data => {
                    let take = (self.remaining as usize).min(input.len() - i);
                    on_data(&input[i..i + take]);
                    self.remaining -= take as u64;
                    i += take;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    match b {
                        b'\r' => self.state = State::DataLf,
                        b'\n' => self.state = State::Size { seen_digit: false },
                        _ => return Err(ChunkedError::BadDelimiter),
                    }
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadDelimiter);
                    }
                    self.state = State::Size { seen_digit: false };
                    i += 1;
                }
                State::TrailerStart => {
                    self.state = match b {
                        b'\r' => State::FinalLf,
                        b'\n' => State::Done,
                        _ => State::TrailerLine,
                    };
                    i += 1;
                    if self.state == State::Done {
                        return Ok(i);
                    }
                }
                State::TrailerLine => {
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    }
                    i += 1;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadDelimiter);
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) {
        if self.size == 0 {
            self.state = State::TrailerStart;
        } else {
            self.remaining = self.size;
            self.size = 0;
            self.state = State::Data;
        }
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
}
