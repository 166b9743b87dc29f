//! The malformed answers mockllm sends for the fault forms that break an answer's bytes
//! rather than its transport: a cut JSON body, a page that is not JSON, broken SSE framing,
//! invalid UTF-8 inside an event, an event too large to buffer, in each dialect's framing
//! (SSE text, or Bedrock's AWS event-stream frames).

use super::dialect::Dialect;

/// What `not-json` answers with status 200: the page a proxy in front of a provider sends.
pub const NOT_JSON_PAGE: &[u8] =
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>\n";

/// A line that is no SSE field a provider sends (`bad-sse-framing` puts one after each event).
const GARBAGE_LINE: &[u8] = b"}}{{ this line is not server-sent events\n";

/// The first half of `body` (`truncated-json`).
pub fn truncated(body: &[u8]) -> &[u8] {
    body.get(..body.len() / 2).unwrap_or_default()
}

/// `event` with its framing broken (`bad-sse-framing`): an SSE event loses the blank line
/// that ends it and is followed by a garbage line, so it runs into the next one; a Bedrock
/// frame gets a wrong message checksum.
pub fn broken_framing(event: &[u8], dialect: Dialect) -> Vec<u8> {
    let mut out = event.to_vec();
    if dialect == Dialect::Bedrock {
        if let Some(last) = out.last_mut() {
            *last ^= 0xff;
        }
        return out;
    }
    if out.ends_with(b"\n\n") {
        out.pop();
    }
    out.extend_from_slice(GARBAGE_LINE);
    out
}

/// `event` with one byte of its JSON replaced by 0xFF, which is never UTF-8
/// (`invalid-utf8-event`): the first character of the first string. A Bedrock frame keeps
/// its length and gets its checksum recomputed, so only the payload is wrong.
pub fn invalid_utf8(event: &[u8], dialect: Dialect) -> Vec<u8> {
    let mut out = event.to_vec();
    let payload = if dialect == Dialect::Bedrock {
        frame_payload(&out)
    } else {
        Some((0, out.len()))
    };
    let Some((start, end)) = payload else {
        return out;
    };
    let quote = out
        .get(start..end)
        .and_then(first_quote)
        .map(|at| start + at + 1);
    if let Some(byte) = quote.filter(|&at| at < end).and_then(|at| out.get_mut(at)) {
        *byte = 0xff;
    }
    if dialect == Dialect::Bedrock && out.len() >= 4 {
        let body = out.len() - 4;
        let crc = crc32fast::hash(&out[..body]);
        out[body..].copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// Where the first `"` of `b` is.
fn first_quote(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'"')
}

/// Where the payload of the AWS event-stream frame at the start of `frame` lies: after the
/// 12-byte prelude and the headers, before the 4-byte checksum.
fn frame_payload(frame: &[u8]) -> Option<(usize, usize)> {
    let word = |at: usize| {
        frame
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let total = usize::try_from(word(0)?).ok()?;
    let headers = usize::try_from(word(4)?).ok()?;
    let start = 12usize.checked_add(headers)?;
    let end = total.checked_sub(4)?;
    (start <= end && end <= frame.len()).then_some((start, end))
}

/// One event of about `bytes` bytes (`oversized-event`): an SSE `data:` line with a long
/// string, ended; a Bedrock frame with a payload that long.
pub fn oversized_event(bytes: usize, dialect: Dialect) -> Vec<u8> {
    let mut payload = Vec::with_capacity(bytes + 32);
    payload.extend_from_slice(b"{\"filler\":\"");
    payload.resize(payload.len() + bytes, b'x');
    payload.extend_from_slice(b"\"}");
    if dialect == Dialect::Bedrock {
        let mut out = Vec::with_capacity(payload.len() + 128);
        super::bedrock::encode_frame(
            &[
                (":event-type", "contentBlockDelta"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            &payload,
            &mut out,
        );
        return out;
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&payload);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const EVENT: &[u8] = b"data: {\"id\":\"x\",\"choices\":[]}\n\n";

    fn bedrock_event() -> Vec<u8> {
        let mut out = Vec::new();
        super::super::bedrock::encode_frame(
            &[(":event-type", "messageStop"), (":message-type", "event")],
            br#"{"stopReason":"end_turn"}"#,
            &mut out,
        );
        out
    }

    fn crc_ok(frame: &[u8]) -> bool {
        let n = frame.len() - 4;
        crc32fast::hash(&frame[..n]).to_be_bytes() == frame[n..]
    }

    #[test]
    fn truncated_keeps_half() {
        assert_eq!(truncated(b"{\"a\":1}x"), b"{\"a\"");
        assert_eq!(truncated(b""), b"");
    }

    #[test]
    fn broken_sse_framing_runs_into_the_next_event() {
        let broken = broken_framing(EVENT, Dialect::OpenAi);
        assert!(broken.starts_with(b"data: {\"id\""));
        assert!(!broken.windows(2).any(|w| w == b"\n\n"), "{broken:?}");
        assert!(broken.ends_with(GARBAGE_LINE));
    }

    #[test]
    fn broken_bedrock_framing_fails_its_checksum() {
        let frame = bedrock_event();
        assert!(crc_ok(&frame));
        let broken = broken_framing(&frame, Dialect::Bedrock);
        assert_eq!(broken.len(), frame.len());
        assert!(!crc_ok(&broken));
    }

    #[test]
    fn invalid_utf8_lands_inside_the_json() {
        let bad = invalid_utf8(EVENT, Dialect::Anthropic);
        assert_eq!(bad.len(), EVENT.len());
        assert!(std::str::from_utf8(&bad).is_err());
        assert!(bad.starts_with(b"data: {\"\xffd\""));
        assert!(bad.ends_with(b"\n\n"));

        let frame = bedrock_event();
        let bad = invalid_utf8(&frame, Dialect::Bedrock);
        assert_eq!(bad.len(), frame.len());
        assert!(crc_ok(&bad), "the frame itself stays valid");
        let (start, end) = frame_payload(&bad).unwrap();
        assert_eq!(&bad[start..start + 2], b"{\"");
        assert_eq!(bad[start + 2], 0xff);
        assert!(std::str::from_utf8(&bad[start..end]).is_err());
    }

    #[test]
    fn oversized_events_are_whole_and_that_large() {
        let e = oversized_event(1000, Dialect::OpenAi);
        assert!(e.len() > 1000 && e.len() < 1100);
        assert!(e.starts_with(b"data: {\"filler\":\"xxx"));
        assert!(e.ends_with(b"\"}\n\n"));
        let f = oversized_event(1000, Dialect::Bedrock);
        assert!(crc_ok(&f));
        let (start, end) = frame_payload(&f).unwrap();
        assert_eq!(end - start, 1000 + 13);
    }
}
