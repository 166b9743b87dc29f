//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the binary framing of
//! Bedrock's `converse-stream` responses: a zero-copy frame decoder for the stream's hot path
//! and a small encoder for tests, benchmarks and the mock provider.
//!
//! A frame is: total length (u32 BE, the whole frame), headers length (u32 BE), CRC32 of
//! those 8 bytes, the headers, the payload, and a CRC32 of everything before it. A header is
//! a name (u8 length, UTF-8), a value type (u8) and the value: 0 `true`, 1 `false` (no
//! value), 2 i8, 3 i16, 4 i32, 5 i64 (all BE), 6 bytes and 7 string (u16 BE length, then the
//! bytes), 8 timestamp (i64 ms since the epoch), 9 UUID (16 bytes).

/// Frames larger than this are refused (AWS's own limit is 16 MiB per message).
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Prelude (8) + prelude CRC (4) + message CRC (4): the size of a frame with nothing in it.
const MIN_FRAME_LEN: usize = 16;

/// Why bytes are not a well-formed event-stream frame. Any of these ends the stream: framing
/// cannot resynchronise after a bad frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    /// The prelude CRC does not match its 8 bytes (the lengths cannot be trusted).
    #[error(
        "event-stream prelude CRC mismatch: expected {expected:#010x}, computed {computed:#010x}"
    )]
    PreludeCrc {
        /// The CRC in the frame.
        expected: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
    /// The message CRC does not match the frame.
    #[error(
        "event-stream message CRC mismatch: expected {expected:#010x}, computed {computed:#010x}"
    )]
    MessageCrc {
        /// The CRC in the frame.
        expected: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
    /// Total length below the 16-byte minimum, or headers longer than the frame leaves room for.
    #[error("event-stream frame lengths invalid: total {total}, headers {headers}")]
    BadLengths {
        /// Total length from the prelude.
        total: u32,
        /// Headers length from the prelude.
        headers: u32,
    },
    /// A frame longer than [`MAX_FRAME_LEN`].
    #[error("event-stream frame of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(u32),
    /// A header that runs past the headers section, has an unknown type or a non-UTF-8 name
    /// or string.
    #[error("event-stream header malformed: {0}")]
    BadHeader(&'static str),
}

/// A header value, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 and 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6.
    Bytes(&'a [u8]),
    /// Type 7.
    String(&'a str),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid(&'a [u8; 16]),
}

/// One decoded frame, borrowing the caller's buffer. The headers were checked when the
/// frame was decoded, so reading them cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFrame<'a> {
    headers: &'a [u8],
    payload: &'a [u8],
}

impl<'a> EventFrame<'a> {
    /// The headers in frame order.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter { rest: self.headers }
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find_map(|(n, v)| (n == name).then_some(v))
    }

    /// A string header's value (`None` when absent or not a string).
    pub fn str_header(&self, name: &str) -> Option<&'a str> {
        match self.header(name) {
            Some(HeaderValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&'a str> {
        self.str_header(":message-type")
    }

    /// `:event-type` of an `event` message (`messageStart`, `contentBlockDelta`, ...).
    pub fn event_type(&self) -> Option<&'a str> {
        self.str_header(":event-type")
    }

    /// `:exception-type` of an `exception` message (`throttlingException`, ...).
    pub fn exception_type(&self) -> Option<&'a str> {
        self.str_header(":exception-type")
    }

    /// `:content-type` of the payload (`application/json`).
    pub fn content_type(&self) -> Option<&'a str> {
        self.str_header(":content-type")
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Iterator over a frame's headers; see [`EventFrame::headers`].
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, HeaderValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        // The section was validated by `decode_frame`; a malformed one simply ends iteration.
        let (name, value, used) = parse_header(self.rest).ok()??;
        self.rest = self.rest.get(used..)?;
        Some((name, value))
    }
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the header at the start of `b`: `Ok(None)` when `b` is empty, else the name, the
/// value and the bytes used.
#[allow(clippy::type_complexity)]
fn parse_header(b: &[u8]) -> Result<Option<(&str, HeaderValue<'_>, usize)>, EventStreamError> {
    const SHORT: EventStreamError = EventStreamError::BadHeader("header runs past the section");
    let Some(&name_len) = b.first() else {
        return Ok(None);
    };
    let name_end = 1 + name_len as usize;
    let name = b.get(1..name_end).ok_or(SHORT)?;
    let name =
        std::str::from_utf8(name).map_err(|_| EventStreamError::BadHeader("name not UTF-8"))?;
    let kind = *b.get(name_end).ok_or(SHORT)?;
    let v = name_end + 1;
    let (value, used) = match kind {
        0 => (HeaderValue::Bool(true), v),
        1 => (HeaderValue::Bool(false), v),
        2 => (
            HeaderValue::Byte(i8::from_be_bytes([*b.get(v).ok_or(SHORT)?])),
            v + 1,
        ),
        3 => (HeaderValue::Int16(be_u16(b, v).ok_or(SHORT)? as i16), v + 2),
        4 => (HeaderValue::Int32(be_u32(b, v).ok_or(SHORT)? as i32), v + 4),
        5 => (HeaderValue::Int64(be_u64(b, v).ok_or(SHORT)? as i64), v + 8),
        6 | 7 => {
            let len = be_u16(b, v).ok_or(SHORT)? as usize;
            let bytes = b.get(v + 2..v + 2 + len).ok_or(SHORT)?;
            let value = if kind == 6 {
                HeaderValue::Bytes(bytes)
            } else {
                HeaderValue::String(
                    std::str::from_utf8(bytes)
                        .map_err(|_| EventStreamError::BadHeader("string value not UTF-8"))?,
                )
            };
            (value, v + 2 + len)
        }
        8 => (
            HeaderValue::Timestamp(be_u64(b, v).ok_or(SHORT)? as i64),
            v + 8,
        ),
        9 => {
            let uuid: &[u8; 16] = b
                .get(v..v + 16)
                .ok_or(SHORT)?
                .try_into()
                .map_err(|_| SHORT)?;
            (HeaderValue::Uuid(uuid), v + 16)
        }
        _ => return Err(EventStreamError::BadHeader("unknown value type")),
    };
    Ok(Some((name, value, used)))
}

/// Decodes the frame at the start of `buf`. `Ok(None)`: `buf` does not hold a whole frame
/// yet (read more and call again with the same start); `Ok(Some((frame, n)))`: the frame and
/// the bytes it used (drop them before the next call). Both CRCs and every header are
/// checked; nothing is copied.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(EventFrame<'_>, usize)>, EventStreamError> {
    let Some((lengths, after)) = buf.split_first_chunk::<8>() else {
        return Ok(None);
    };
    let (Some(total), Some(headers_len), Some(prelude_crc)) =
        (be_u32(lengths, 0), be_u32(lengths, 4), be_u32(after, 0))
    else {
        return Ok(None);
    };
    let computed = crc32fast::hash(lengths);
    if computed != prelude_crc {
        return Err(EventStreamError::PreludeCrc {
            expected: prelude_crc,
            computed,
        });
    }
    let len = total as usize;
    if len > MAX_FRAME_LEN {
        return Err(EventStreamError::TooLarge(total));
    }
    let bad_lengths = EventStreamError::BadLengths {
        total,
        headers: headers_len,
    };
    if len < MIN_FRAME_LEN || headers_len as usize > len - MIN_FRAME_LEN {
        return Err(bad_lengths);
    }
    let Some(frame) = buf.get(..len) else {
        return Ok(None);
    };
    // The checks above leave room for the prelude, the headers and the message CRC.
    let Some((body, crc)) = frame.split_last_chunk::<4>() else {
        return Err(bad_lengths);
    };
    let expected = u32::from_be_bytes(*crc);
    let computed = crc32fast::hash(body);
    if computed != expected {
        return Err(EventStreamError::MessageCrc { expected, computed });
    }
    let Some((headers, payload)) = body
        .get(12..)
        .and_then(|b| b.split_at_checked(headers_len as usize))
    else {
        return Err(bad_lengths);
    };
    let mut rest = headers;
    while let Some((_, _, used)) = parse_header(rest)? {
        rest = rest
            .get(used..)
            .ok_or(EventStreamError::BadHeader("header runs past the section"))?;
    }
    Ok(Some((EventFrame { headers, payload }, len)))
}

/// Appends one frame with string headers (type 7) and `payload` to `out`. Names longer than
/// 255 bytes and values longer than 65535 bytes are cut to fit (callers pass short literals).
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8], out: &mut Vec<u8>) {
    fn cut(s: &str, max: usize) -> &[u8] {
        let b = s.as_bytes();
        b.get(..max).unwrap_or(b)
    }
    const NAME_MAX: usize = u8::MAX as usize;
    const VALUE_MAX: usize = u16::MAX as usize;
    // name length, name, type, value length, value
    let headers_len: usize = headers
        .iter()
        .map(|(n, v)| 1 + cut(n, NAME_MAX).len() + 1 + 2 + cut(v, VALUE_MAX).len())
        .sum();
    let total = 12 + headers_len + payload.len() + 4;
    // The prelude's two u32 BE: total length, then headers length.
    let lengths = ((u64::from(total as u32) << 32) | u64::from(headers_len as u32)).to_be_bytes();
    // The message CRC covers everything written before it.
    let mut crc = crc32fast::Hasher::new();
    let mut put = |bytes: &[u8]| {
        crc.update(bytes);
        out.extend_from_slice(bytes);
    };
    put(&lengths);
    put(&crc32fast::hash(&lengths).to_be_bytes());
    for (name, value) in headers {
        let (name, value) = (cut(name, NAME_MAX), cut(value, VALUE_MAX));
        put(&[name.len() as u8]);
        put(name);
        put(&[7]);
        put(&(value.len() as u16).to_be_bytes());
        put(value);
    }
    put(payload);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

#[cfg(test)]
// Test vectors are hex literals; `allow-indexing-slicing-in-tests` does not cover string_slice.
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The "application data" message of the aws-c-event-stream tests: one header
    /// `content-type: application/json`, payload `{'foo':'bar'}`.
    const AWS_VECTOR: &str = "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1";

    #[test]
    fn decodes_the_aws_c_event_stream_vector() {
        let buf = unhex(AWS_VECTOR);
        let (frame, used) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(frame.payload(), b"{'foo':'bar'}");
        assert_eq!(
            frame.headers().collect::<Vec<_>>(),
            [("content-type", HeaderValue::String("application/json"))]
        );
        // The encoder produces the same bytes.
        let mut out = Vec::new();
        encode_frame(
            &[("content-type", "application/json")],
            b"{'foo':'bar'}",
            &mut out,
        );
        assert_eq!(out, buf);
    }

    #[test]
    fn empty_message_vector() {
        let buf = unhex("000000100000000005c248eb7d98c8ff");
        let (frame, used) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!(used, 16);
        assert!(frame.payload().is_empty());
        assert_eq!(frame.headers().count(), 0);
        let mut out = Vec::new();
        encode_frame(&[], b"", &mut out);
        assert_eq!(out, buf);
    }

    #[test]
    fn bedrock_style_headers_and_partial_input() {
        let mut buf = Vec::new();
        encode_frame(
            &[
                (":event-type", "contentBlockDelta"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
            &mut buf,
        );
        let one = buf.len();
        encode_frame(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
            &mut buf,
        );
        for cut in 0..one {
            assert!(decode_frame(&buf[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let (f, used) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!(used, one);
        assert_eq!(f.event_type(), Some("contentBlockDelta"));
        assert_eq!(f.message_type(), Some("event"));
        assert_eq!(f.content_type(), Some("application/json"));
        assert_eq!(f.exception_type(), None);
        let (f, used) = decode_frame(&buf[one..]).unwrap().unwrap();
        assert_eq!(used, buf.len() - one);
        assert_eq!(f.message_type(), Some("exception"));
        assert_eq!(f.exception_type(), Some("throttlingException"));
        assert_eq!(f.payload(), br#"{"message":"slow down"}"#);
    }

    #[test]
    fn all_header_value_types_decode() {
        let mut h = Vec::new();
        let mut push = |name: &str, kind: u8, value: &[u8]| {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(kind);
            h.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[0xff]);
        push("s", 3, &(-2i16).to_be_bytes());
        push("i", 4, &7i32.to_be_bytes());
        push("l", 5, &(-9i64).to_be_bytes());
        push("y", 6, &[0, 2, 1, 2]);
        push("str", 7, &[0, 2, b'o', b'k']);
        push("ts", 8, &1_700_000_000_000i64.to_be_bytes());
        push("u", 9, &[7; 16]);
        let mut buf = Vec::new();
        let total = (12 + h.len() + 2 + 4) as u32;
        buf.extend_from_slice(&total.to_be_bytes());
        buf.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let c = crc32fast::hash(&buf);
        buf.extend_from_slice(&c.to_be_bytes());
        buf.extend_from_slice(&h);
        buf.extend_from_slice(b"{}");
        let c = crc32fast::hash(&buf);
        buf.extend_from_slice(&c.to_be_bytes());
        let (f, _) = decode_frame(&buf).unwrap().unwrap();
        let got: Vec<_> = f.headers().collect();
        assert_eq!(
            got,
            [
                ("t", HeaderValue::Bool(true)),
                ("f", HeaderValue::Bool(false)),
                ("b", HeaderValue::Byte(-1)),
                ("s", HeaderValue::Int16(-2)),
                ("i", HeaderValue::Int32(7)),
                ("l", HeaderValue::Int64(-9)),
                ("y", HeaderValue::Bytes(&[1, 2])),
                ("str", HeaderValue::String("ok")),
                ("ts", HeaderValue::Timestamp(1_700_000_000_000)),
                ("u", HeaderValue::Uuid(&[7; 16])),
            ]
        );
        assert_eq!(f.payload(), b"{}");
    }

    #[test]
    fn corrupt_frames_are_refused() {
        let good = unhex(AWS_VECTOR);
        let mut bad = good.clone();
        bad[3] ^= 1;
        assert!(matches!(
            decode_frame(&bad),
            Err(EventStreamError::PreludeCrc { .. })
        ));
        let mut bad = good.clone();
        bad[30] ^= 1;
        assert!(matches!(
            decode_frame(&bad),
            Err(EventStreamError::MessageCrc { .. })
        ));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            decode_frame(&bad),
            Err(EventStreamError::MessageCrc { .. })
        ));
        // A prelude claiming 32 MiB, with a valid prelude CRC.
        let mut big = Vec::new();
        big.extend_from_slice(&(32u32 << 20).to_be_bytes());
        big.extend_from_slice(&0u32.to_be_bytes());
        let c = crc32fast::hash(&big);
        big.extend_from_slice(&c.to_be_bytes());
        assert_eq!(
            decode_frame(&big),
            Err(EventStreamError::TooLarge(32 << 20))
        );
        // Headers longer than the frame.
        let mut odd = Vec::new();
        odd.extend_from_slice(&20u32.to_be_bytes());
        odd.extend_from_slice(&10u32.to_be_bytes());
        let c = crc32fast::hash(&odd);
        odd.extend_from_slice(&c.to_be_bytes());
        assert!(matches!(
            decode_frame(&odd),
            Err(EventStreamError::BadLengths { .. })
        ));
        // A header with an unknown value type, CRCs valid.
        let mut h = Vec::new();
        h.extend_from_slice(&[1, b'x', 42]);
        let mut buf = Vec::new();
        buf.extend_from_slice(&((12 + h.len() + 4) as u32).to_be_bytes());
        buf.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let c = crc32fast::hash(&buf);
        buf.extend_from_slice(&c.to_be_bytes());
        buf.extend_from_slice(&h);
        let c = crc32fast::hash(&buf);
        buf.extend_from_slice(&c.to_be_bytes());
        assert_eq!(
            decode_frame(&buf).err(),
            Some(EventStreamError::BadHeader("unknown value type"))
        );
    }
}
