//! The faults mockllm can inject, and their textual form (`x-mock-fault`, `--fault`).

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A failure mode to simulate instead of (or in the middle of) a normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and an OpenAI-shaped error body (429 adds `retry-after`).
    Status(u16),
    /// Close the connection with a TCP reset before answering.
    Reset,
    /// Send the response head (200, the answer's content type), then reset: no body byte.
    ResetAfterHead,
    /// Send the head and some of the body (some SSE events), then reset.
    ResetMidStream,
    /// Read the request, never answer; wait until the client goes away.
    Stall,
    /// Send the head and some of the body (some SSE events), then go silent.
    StallMidStream,
    /// Streams: send half the events, then an error event in the dialect's format with
    /// this status and end the stream. Non-streamed answers: this status, as `Status`.
    ErrorMidStream(u16),
    /// Send the head at once, then the body one byte every this many milliseconds: a
    /// provider (or a proxy in front of it) that trickles a valid answer.
    Drip(u32),
    /// A whole answer (status 200, `application/json`) whose body is cut in half; its
    /// `content-length` says the cut length, so the framing is right and the JSON is not.
    TruncatedJson,
    /// A 200 answer that is not JSON at all: an HTML page, as a proxy in front of the
    /// provider might send.
    NotJson,
    /// Streams: the events without the blank line that ends each one, with garbage lines
    /// between them (Bedrock: a frame whose checksum is wrong).
    BadSseFraming,
    /// Streams: one event whose JSON holds bytes that are not UTF-8 (Bedrock: in a
    /// frame's payload).
    InvalidUtf8Event,
    /// Streams: after the first events, one event of this many bytes that never ends
    /// (Bedrock: a frame announcing that length); larger than any buffer should hold.
    OversizedEvent(u32),
    /// Answer normally and keep the connection alive, then close it without a word once
    /// it has been idle this many milliseconds: the race a client's connection pool must
    /// survive by retrying on a fresh connection.
    IdleClose(u32),
    /// Answer with a stream whatever the request asked for.
    StreamAnswer,
    /// Answer with a whole JSON body whatever the request asked for.
    WholeAnswer,
    /// A 5xx storm: every request carrying it within this many milliseconds of the first
    /// one fails with `status`; after that, it is answered normally.
    Storm {
        /// How long the storm lasts, from the first request that meets it.
        ms: u32,
        /// The status every request gets during the storm.
        status: u16,
    },
}

/// Default pause between two bytes of a `drip`.
const DRIP_DEFAULT_MS: u32 = 1000;
/// Default size of an `oversized-event`: past the 8 MiB a gateway should buffer at most.
const OVERSIZED_DEFAULT_BYTES: u32 = 9 << 20;
/// Largest `oversized-event` accepted.
const OVERSIZED_MAX_BYTES: u32 = 256 << 20;
/// Longest `drip` pause, `idle-close` wait and `storm` accepted (ten minutes).
const MAX_MS: u32 = 600_000;

impl Fault {
    /// Whether the fault strikes after the answer has begun.
    pub fn is_mid_stream(self) -> bool {
        matches!(
            self,
            Fault::ResetMidStream
                | Fault::StallMidStream
                | Fault::ErrorMidStream(_)
                | Fault::BadSseFraming
                | Fault::InvalidUtf8Event
                | Fault::OversizedEvent(_)
        )
    }

    /// Whether an answer should be a stream, given whether the request asked for one.
    pub fn streams(fault: Option<Fault>, asked: bool) -> bool {
        match fault {
            Some(Fault::StreamAnswer) => true,
            Some(Fault::WholeAnswer) => false,
            _ => asked,
        }
    }
}

/// When the first request carrying a storm met it (process-wide: one storm per mockllm).
static STORM_STARTED: OnceLock<Instant> = OnceLock::new();

/// Whether a request carrying `storm` now is inside the storm (the first one starts it).
pub fn storm_rages(ms: u32) -> bool {
    let started = *STORM_STARTED.get_or_init(Instant::now);
    started.elapsed() < Duration::from_millis(u64::from(ms))
}

/// A fault string that is not one of the known forms.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown fault {0:?}: expected status:CODE, reset, reset-after-head, reset-mid-stream, stall, stall-mid-stream, error-mid-stream[:CODE], drip[:MS], truncated-json, not-json, bad-sse-framing, invalid-utf8-event, oversized-event[:BYTES], idle-close:MS, stream-answer, whole-answer or storm:MS[:CODE]"
)]
pub struct FaultParseError(pub String);

/// `text` as a number in `range`, or the parse error for `whole`.
fn number<T>(
    text: &str,
    range: std::ops::RangeInclusive<T>,
    whole: &str,
) -> Result<T, FaultParseError>
where
    T: FromStr + PartialOrd,
{
    match text.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(FaultParseError(whole.to_string())),
    }
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let bad = || FaultParseError(s.to_string());
        Ok(match (name, arg) {
            ("status", Some(code)) => Fault::Status(number(code, 100..=599, s)?),
            ("error-mid-stream", Some(code)) => Fault::ErrorMidStream(number(code, 400..=599, s)?),
            ("error-mid-stream", None) => Fault::ErrorMidStream(500),
            ("reset", None) => Fault::Reset,
            ("reset-after-head", None) => Fault::ResetAfterHead,
            ("reset-mid-stream", None) => Fault::ResetMidStream,
            ("stall", None) => Fault::Stall,
            ("stall-mid-stream", None) => Fault::StallMidStream,
            ("drip", None) => Fault::Drip(DRIP_DEFAULT_MS),
            ("drip", Some(ms)) => Fault::Drip(number(ms, 1..=MAX_MS, s)?),
            ("truncated-json", None) => Fault::TruncatedJson,
            ("not-json", None) => Fault::NotJson,
            ("bad-sse-framing", None) => Fault::BadSseFraming,
            ("invalid-utf8-event", None) => Fault::InvalidUtf8Event,
            ("oversized-event", None) => Fault::OversizedEvent(OVERSIZED_DEFAULT_BYTES),
            ("oversized-event", Some(n)) => {
                Fault::OversizedEvent(number(n, 1..=OVERSIZED_MAX_BYTES, s)?)
            }
            ("idle-close", Some(ms)) => Fault::IdleClose(number(ms, 1..=MAX_MS, s)?),
            ("stream-answer", None) => Fault::StreamAnswer,
            ("whole-answer", None) => Fault::WholeAnswer,
            ("storm", Some(arg)) => {
                let (ms, status) = match arg.split_once(':') {
                    Some((ms, code)) => (ms, number(code, 500..=599, s)?),
                    None => (arg, 503),
                };
                Fault::Storm {
                    ms: number(ms, 1..=MAX_MS, s)?,
                    status,
                }
            }
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Fault {
        s.parse::<Fault>().unwrap()
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(parse("status:503"), Fault::Status(503));
        assert_eq!(parse("reset"), Fault::Reset);
        assert_eq!(parse("reset-mid-stream"), Fault::ResetMidStream);
        assert_eq!(parse("stall"), Fault::Stall);
        assert_eq!(parse("stall-mid-stream"), Fault::StallMidStream);
        assert_eq!(parse("error-mid-stream:529"), Fault::ErrorMidStream(529));
        assert_eq!(parse("error-mid-stream"), Fault::ErrorMidStream(500));
        assert!("error-mid-stream:200".parse::<Fault>().is_err());
        assert!("status:99".parse::<Fault>().is_err());
        assert!("boom".parse::<Fault>().is_err());
    }

    #[test]
    fn parses_the_transport_faults() {
        assert_eq!(parse("reset-after-head"), Fault::ResetAfterHead);
        assert_eq!(parse("drip"), Fault::Drip(1000));
        assert_eq!(parse(" drip:25 "), Fault::Drip(25));
        assert!("drip:0".parse::<Fault>().is_err());
        assert!("drip:fast".parse::<Fault>().is_err());
        assert!("drip:600001".parse::<Fault>().is_err());
        assert_eq!(parse("idle-close:50"), Fault::IdleClose(50));
        assert!("idle-close".parse::<Fault>().is_err());
        assert!("idle-close:-1".parse::<Fault>().is_err());
        assert!("reset-after-head:1".parse::<Fault>().is_err());
    }

    #[test]
    fn parses_the_malformed_answers() {
        assert_eq!(parse("truncated-json"), Fault::TruncatedJson);
        assert_eq!(parse("not-json"), Fault::NotJson);
        assert_eq!(parse("bad-sse-framing"), Fault::BadSseFraming);
        assert_eq!(parse("invalid-utf8-event"), Fault::InvalidUtf8Event);
        assert_eq!(parse("oversized-event"), Fault::OversizedEvent(9 << 20));
        assert_eq!(parse("oversized-event:1024"), Fault::OversizedEvent(1024));
        assert!("oversized-event:0".parse::<Fault>().is_err());
        assert!("oversized-event:999999999999".parse::<Fault>().is_err());
        assert!("not-json:1".parse::<Fault>().is_err());
        assert_eq!(parse("stream-answer"), Fault::StreamAnswer);
        assert_eq!(parse("whole-answer"), Fault::WholeAnswer);
    }

    #[test]
    fn parses_storms() {
        assert_eq!(
            parse("storm:1500"),
            Fault::Storm {
                ms: 1500,
                status: 503
            }
        );
        assert_eq!(
            parse("storm:200:529"),
            Fault::Storm {
                ms: 200,
                status: 529
            }
        );
        assert!("storm".parse::<Fault>().is_err());
        assert!("storm:100:429".parse::<Fault>().is_err());
        assert!("storm:100:503:1".parse::<Fault>().is_err());
    }

    #[test]
    fn the_answer_shape_faults_override_what_was_asked() {
        assert!(Fault::streams(Some(Fault::StreamAnswer), false));
        assert!(!Fault::streams(Some(Fault::WholeAnswer), true));
        assert!(Fault::streams(Some(Fault::Reset), true));
        assert!(!Fault::streams(None, false));
        assert!(Fault::BadSseFraming.is_mid_stream());
        assert!(!Fault::TruncatedJson.is_mid_stream());
    }
}
