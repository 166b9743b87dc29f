//! Incremental decoder for `Transfer-Encoding: chunked` bodies.

/// A malformed chunked body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line was not valid hex or too long.
    #[error("invalid chunk size line")]
    BadSize,
    /// The CRLF after a chunk's data was missing.
    #[error("missing CRLF after chunk data")]
    BadDelimiter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { value: u64, digits: u8 },
    Extension { value: u64 },
    SizeLf { value: u64 },
    Data { remaining: u64 },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    FinalLf,
    Done,
}

/// Decodes a chunked body fed in arbitrary pieces, appending the payload to an output buffer.
/// It exists so both sides of the wire (mock server, load generator) can follow a stream
/// as it arrives, without waiting for the whole body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
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
            state: State::Size {
                value: 0,
                digits: 0,
            },
        }
    }

    /// True once the terminating zero-size chunk and trailers were consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds `input`, appends decoded payload to `out`, returns how many input bytes were
    /// consumed (less than `input.len()` only when the body ended inside `input`).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { remaining } = self.state {
                let take = (remaining as usize).min(input.len() - i);
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Size { value, digits } => match hex_value(b) {
                    Some(d) if digits < 15 => State::Size {
                        value: value * 16 + u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return Err(ChunkedError::BadSize),
                    None if digits == 0 => return Err(ChunkedError::BadSize),
                    None => match b {
                        b';' | b' ' | b'\t' => State::Extension { value },
                        b'\r' => State::SizeLf { value },
                        b'\n' => after_size_line(value),
                        _ => return Err(ChunkedError::BadSize),
                    },
                },
                State::Extension { value } => match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => after_size_line(value),
                    _ => State::Extension { value },
                },
                State::SizeLf { value } => match b {
                    b'\n' => after_size_line(value),
                    _ => return Err(ChunkedError::BadSize),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => State::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => return Err(ChunkedError::BadDelimiter),
                },
                State::DataLf => match b {
                    b'\n' => State::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => return Err(ChunkedError::BadDelimiter),
                },
                State::TrailerLineStart => match b {
                    b'\r' => State::FinalLf,
                    b'\n' => State::Done,
                    _ => State::TrailerLine,
                },
                State::TrailerLine => match b {
                    b'\n' => State::TrailerLineStart,
                    _ => State::TrailerLine,
                },
                State::FinalLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(ChunkedError::BadDelimiter),
                },
                State::Data { .. } | State::Done => self.state,
            };
            if self.state == State::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }
}

fn after_size_line(value: u64) -> State {
    if value == 0 {
        State::TrailerLineStart
    } else {
        State::Data { remaining: value }
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_whole_body_and_stops_at_end() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = d.feed(body, &mut out).unwrap();
        assert_eq!(out, b"hello world");
        assert!(d.is_done());
        assert_eq!(&body[used..], b"NEXT");
    }

    #[test]
    fn decodes_byte_by_byte_with_trailers() {
        let body = b"a\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for b in body.iter() {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, b"0123456789");
        assert!(d.is_done());
    }

    #[test]
    fn rejects_bad_size_and_delimiter() {
        let mut out = Vec::new();
        assert_eq!(
            ChunkedDecoder::new().feed(b"zz\r\n", &mut out),
            Err(ChunkedError::BadSize)
        );
        assert_eq!(
            ChunkedDecoder::new().feed(b"1\r\nab", &mut out),
            Err(ChunkedError::BadDelimiter)
        );
    }
}
