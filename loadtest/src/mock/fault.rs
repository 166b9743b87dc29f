//! The faults mockllm can inject, and their textual form (`x-mock-fault`, `--fault`).

use std::str::FromStr;

/// A failure mode to simulate instead of (or in the middle of) a normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and an OpenAI-shaped error body (429 adds `retry-after`).
    Status(u16),
    /// Close the connection with a TCP reset before answering.
    Reset,
    /// Send the head and some of the body (some SSE events), then reset.
    ResetMidStream,
    /// Read the request, never answer; wait until the client goes away.
    Stall,
    /// Send the head and some of the body (some SSE events), then go silent.
    StallMidStream,
    /// Streams: send half the events, then an error event in the dialect's format with
    /// this status and end the stream. Non-streamed answers: this status, as `Status`.
    ErrorMidStream(u16),
}

impl Fault {
    /// Whether the fault strikes after the answer has begun.
    pub fn is_mid_stream(self) -> bool {
        matches!(
            self,
            Fault::ResetMidStream | Fault::StallMidStream | Fault::ErrorMidStream(_)
        )
    }
}

/// A fault string that is not one of the known forms.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown fault {0:?}: expected status:CODE, reset, reset-mid-stream, stall, stall-mid-stream or error-mid-stream[:CODE]"
)]
pub struct FaultParseError(pub String);

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(code) = s.strip_prefix("status:") {
            return match code.trim().parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => Ok(Fault::Status(code)),
                _ => Err(FaultParseError(s.to_string())),
            };
        }
        if let Some(code) = s.strip_prefix("error-mid-stream:") {
            return match code.trim().parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => Ok(Fault::ErrorMidStream(code)),
                _ => Err(FaultParseError(s.to_string())),
            };
        }
        match s {
            "error-mid-stream" => Ok(Fault::ErrorMidStream(500)),
            "reset" => Ok(Fault::Reset),
            "reset-mid-stream" => Ok(Fault::ResetMidStream),
            "stall" => Ok(Fault::Stall),
            "stall-mid-stream" => Ok(Fault::StallMidStream),
            _ => Err(FaultParseError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!("status:503".parse::<Fault>().unwrap(), Fault::Status(503));
        assert_eq!("reset".parse::<Fault>().unwrap(), Fault::Reset);
        assert_eq!(
            "reset-mid-stream".parse::<Fault>().unwrap(),
            Fault::ResetMidStream
        );
        assert_eq!("stall".parse::<Fault>().unwrap(), Fault::Stall);
        assert_eq!(
            "stall-mid-stream".parse::<Fault>().unwrap(),
            Fault::StallMidStream
        );
        assert_eq!(
            "error-mid-stream:529".parse::<Fault>().unwrap(),
            Fault::ErrorMidStream(529)
        );
        assert_eq!(
            "error-mid-stream".parse::<Fault>().unwrap(),
            Fault::ErrorMidStream(500)
        );
        assert!("error-mid-stream:200".parse::<Fault>().is_err());
        assert!("status:99".parse::<Fault>().is_err());
        assert!("boom".parse::<Fault>().is_err());
    }
}
