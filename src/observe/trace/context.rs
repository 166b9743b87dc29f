//! W3C trace context: the ids a request is traced under, read from the client's
//! `traceparent` (an invalid one is ignored, as the spec says) or drawn afresh, the sampling
//! decision, and the `traceparent` each provider attempt sends on.

use std::fmt;

use crate::http::HeaderList;

/// A trace id: 16 bytes, never all zero. Written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub u128);

impl TraceId {
    /// A fresh random trace id.
    pub fn random() -> Self {
        Self(fastrand::u128(1..))
    }

    /// The id's bytes in wire order.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a valid `traceparent` from the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteParent {
    /// The trace the request belongs to.
    pub trace_id: TraceId,
    /// The client's span: the gateway's server span hangs under it.
    pub span_id: u64,
    /// The client's sampled flag.
    pub sampled: bool,
}

/// Reads a `traceparent` value (W3C Trace Context): `None` when it is invalid.
///
/// Version `00` is exactly 55 characters; a later version may carry more after a `-`, and
/// its first four fields are read as version `00`'s. Version `ff`, upper-case hex, and all-zero
/// trace or parent ids are invalid.
pub fn parse_traceparent(value: &[u8]) -> Option<RemoteParent> {
    let value = value.trim_ascii();
    let version = hex_field(value.get(0..2)?)?;
    if version == 0xff
        || (version == 0 && value.len() != 55)
        || (value.len() > 55 && value.get(55) != Some(&b'-'))
    {
        return None;
    }
    let dashes = [2, 35, 52].iter().all(|&i| value.get(i) == Some(&b'-'));
    if !dashes {
        return None;
    }
    let trace_id = hex_field(value.get(3..35)?)?;
    let span_id = u64::try_from(hex_field(value.get(36..52)?)?).ok()?;
    let flags = hex_field(value.get(53..55)?)?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(RemoteParent {
        trace_id: TraceId(trace_id),
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// A field of lowercase hex digits (at most 32) as a number.
fn hex_field(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u128::from(v))
    })
}

/// The one `traceparent` the client sent: two are as good as none (the spec treats a
/// repeated header as invalid).
pub fn client_traceparent(headers: &HeaderList) -> Option<&[u8]> {
    let mut found = None;
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("traceparent") {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    found
}

/// Samples the traces the gateway starts itself: a trace id's low 56 bits below the
/// threshold, so the decision is a pure function of the id (the same trace is kept or
/// dropped wherever the same ratio applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampler {
    threshold: u64,
}

const LOW_56: u64 = (1 << 56) - 1;

impl Sampler {
    /// Keeps `ratio` (0.0 to 1.0, clamped) of new traces.
    pub fn ratio(ratio: f64) -> Self {
        let r = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        // 2^56 * r: exact at 0 and 1; the cast saturates.
        let threshold = (r * (LOW_56 as f64 + 1.0)) as u64;
        Self { threshold }
    }

    /// Whether a trace the gateway starts is kept.
    pub fn samples(self, id: TraceId) -> bool {
        ((id.0 as u64) & LOW_56) < self.threshold
    }
}

/// The ids one request is traced under, and whether its spans are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (the client's, or a new one).
    pub trace_id: TraceId,
    /// The gateway's server span for this request.
    pub span_id: u64,
    /// The client's span, when it sent a valid `traceparent`.
    pub parent: Option<u64>,
    /// Whether this request's spans are exported.
    pub sampled: bool,
    /// Whether tracing is on: attempts then send the gateway's own `traceparent`.
    pub propagate: bool,
}

impl TraceContext {
    /// The context of a request: under the client's `traceparent` when it is valid
    /// (its sampled flag decides), else a new trace sampled by `sampler`. With tracing off
    /// (`sampler` is `None`) only the trace id is kept, for the record.
    pub fn begin(traceparent: Option<&[u8]>, sampler: Option<Sampler>) -> Self {
        let remote = traceparent.and_then(parse_traceparent);
        let trace_id = remote.map_or_else(TraceId::random, |p| p.trace_id);
        let sampled = match (sampler, remote) {
            (None, _) => false,
            (Some(_), Some(p)) => p.sampled,
            (Some(s), None) => s.samples(trace_id),
        };
        Self {
            trace_id,
            span_id: fastrand::u64(1..),
            parent: remote.map(|p| p.span_id),
            sampled,
            propagate: sampler.is_some(),
        }
    }

    /// The span id of the request's attempt number `index` (0 for the first): derived
    /// from the server span's id, so it exists before the attempt is recorded and the
    /// record needs no field for it.
    pub fn attempt_span_id(&self, index: usize) -> u64 {
        let id = splitmix64(self.span_id.wrapping_add(index as u64 + 1));
        if id == 0 {
            1
        } else {
            id
        }
    }

    /// `traceparent: 00-{trace}-{span_id}-{flags}` naming `span_id` as the parent.
    pub fn traceparent(&self, span_id: u64) -> [u8; 55] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        write_hex(out.get_mut(3..35), self.trace_id.0, 32);
        write_hex(out.get_mut(36..52), u128::from(span_id), 16);
        write_hex(out.get_mut(53..55), u128::from(self.sampled), 2);
        out
    }
}

/// Writes the low `digits` hex digits of `v` into `out` (lowercase).
fn write_hex(out: Option<&mut [u8]>, v: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let Some(out) = out else { return };
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i as u32);
        let nibble = ((v >> shift) & 0xf) as usize;
        *slot = HEX.get(nibble).copied().unwrap_or(b'0');
    }
}

/// A bijective 64-bit mix (SplitMix64's finalizer): distinct inputs, distinct ids.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_a_valid_traceparent() {
        let p = parse_traceparent(GOOD).unwrap();
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id, 0x00f0_67aa_0ba9_02b7);
        assert!(p.sampled);
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse_traceparent(unsampled).unwrap().sampled);
        // Only bit 0 is the sampled flag.
        let other_bits = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02";
        assert!(!parse_traceparent(other_bits).unwrap().sampled);
        // A later version may append fields after a dash.
        let future = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future";
        assert!(parse_traceparent(future).is_some());
        assert!(
            parse_traceparent(b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ")
                .is_some()
        );
    }

    #[test]
    fn ignores_invalid_traceparents() {
        for bad in [
            &b""[..],
            b"00",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn headers(text: &str) -> crate::http::RequestHead {
        crate::http::RequestHead::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_repeated_traceparent_is_ignored() {
        let tp = std::str::from_utf8(GOOD).unwrap();
        let one = headers(&format!("GET / HTTP/1.1\r\nTraceparent: {tp}\r\n\r\n"));
        assert_eq!(client_traceparent(&one.headers), Some(GOOD));
        let two = headers(&format!(
            "GET / HTTP/1.1\r\ntraceparent: {tp}\r\ntraceparent: {tp}\r\n\r\n"
        ));
        assert_eq!(client_traceparent(&two.headers), None);
        let none = headers("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(client_traceparent(&none.headers), None);
    }

    #[test]
    fn the_client_decides_for_its_trace_and_the_ratio_for_new_ones() {
        let all = Some(Sampler::ratio(1.0));
        let none = Some(Sampler::ratio(0.0));
        let cx = TraceContext::begin(Some(GOOD), none);
        assert!(cx.sampled && cx.propagate);
        assert_eq!(cx.parent, Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(cx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(cx.span_id, 0);
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceContext::begin(Some(unsampled), all).sampled);
        let root = TraceContext::begin(Some(b"garbage"), all);
        assert!(root.sampled && root.parent.is_none());
        assert!(!TraceContext::begin(None, none).sampled);
        let off = TraceContext::begin(Some(GOOD), None);
        assert!(!off.sampled && !off.propagate);
        assert_eq!(off.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn the_ratio_keeps_about_its_share() {
        let half = Sampler::ratio(0.25);
        let kept = (0..20_000)
            .filter(|_| half.samples(TraceId::random()))
            .count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
        assert!(Sampler::ratio(1.0).samples(TraceId(u128::MAX)));
        assert!(!Sampler::ratio(0.0).samples(TraceId(1 << 60)));
    }

    #[test]
    fn attempts_get_distinct_span_ids_and_a_traceparent_each() {
        let cx = TraceContext {
            trace_id: TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: 7,
            parent: None,
            sampled: true,
            propagate: true,
        };
        let ids: std::collections::HashSet<u64> = (0..100)
            .map(|i| cx.attempt_span_id(i))
            .chain([cx.span_id])
            .collect();
        assert_eq!(ids.len(), 101);
        assert_eq!(cx.attempt_span_id(3), cx.attempt_span_id(3));
        let tp = cx.traceparent(0x00f0_67aa_0ba9_02b7);
        assert_eq!(&tp[..], GOOD);
        assert_eq!(
            parse_traceparent(&tp).unwrap().span_id,
            0x00f0_67aa_0ba9_02b7
        );
        let unsampled = TraceContext {
            sampled: false,
            ..cx
        };
        assert!(unsampled.traceparent(1).ends_with(b"-0000000000000001-00"));
    }

    #[test]
    fn trace_ids_are_hex_in_json() {
        let id = TraceId(0xab);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"000000000000000000000000000000ab\""
        );
        assert_eq!(id.to_bytes()[15], 0xab);
    }
}
