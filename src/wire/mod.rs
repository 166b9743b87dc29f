//! The types every part shares: which wire format a body is in, which endpoint a request came
//! to, how many tokens a call used and why it stopped.
//!
//! This module depends on nothing else in the crate, so `api`, `translate`, `route`,
//! `upstream`, `config` and `observe` can all use these types without depending on each other.
//! The conversions from each dialect's own spelling live with that dialect (in `translate` and
//! `api`) as inherent methods on these types.

use serde::Serialize;

/// A wire format on either side of the gateway: what a client speaks, what a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireApi {
    /// OpenAI Chat Completions (and every OpenAI-compatible provider).
    Chat,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Responses.
    Responses,
    /// Google Gemini generateContent.
    Gemini,
    /// AWS Bedrock Converse.
    Converse,
}

impl WireApi {
    /// The name used in docs, records and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "OpenAI Chat Completions",
            Self::Messages => "Anthropic Messages",
            Self::Responses => "OpenAI Responses",
            Self::Gemini => "Google Gemini",
            Self::Converse => "AWS Bedrock Converse",
        }
    }

    /// Whether a stream in this format is SSE (Bedrock's is AWS event-stream frames).
    pub fn streams_sse(self) -> bool {
        self != Self::Converse
    }

    /// Whether errors in this format take Anthropic's shape (`{"type":"error","error":…}`)
    /// rather than OpenAI's (`{"error":{…}}`).
    pub fn anthropic_errors(self) -> bool {
        self == Self::Messages
    }
}

/// The endpoints the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
    /// `POST /v1/messages` (Anthropic Messages)
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
    /// `POST /v1/responses` (OpenAI Responses)
    Responses,
}

impl Endpoint {
    /// Maps a request path to an endpoint (`None`: 404).
    pub fn from_path(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" | "/chat/completions" => Some(Self::ChatCompletions),
            "/v1/embeddings" | "/embeddings" => Some(Self::Embeddings),
            "/v1/models" | "/models" => Some(Self::Models),
            "/v1/messages" => Some(Self::Messages),
            "/v1/messages/count_tokens" => Some(Self::CountTokens),
            "/v1/responses" | "/responses" => Some(Self::Responses),
            _ => None,
        }
    }

    /// The wire format a client of this endpoint speaks (`None`: not a generation endpoint).
    pub fn client_wire(self) -> Option<WireApi> {
        match self {
            Self::ChatCompletions => Some(WireApi::Chat),
            Self::Messages => Some(WireApi::Messages),
            Self::Responses => Some(WireApi::Responses),
            _ => None,
        }
    }

    /// The format of the errors this endpoint's clients expect: Anthropic's for the Messages
    /// endpoints, OpenAI's for the others.
    pub fn error_wire(self) -> WireApi {
        match self {
            Self::Messages | Self::CountTokens => WireApi::Messages,
            _ => WireApi::Chat,
        }
    }

    /// The name used in request records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
            Self::Messages => "messages",
            Self::CountTokens => "messages.count_tokens",
            Self::Responses => "responses",
        }
    }
}

/// Token counts of a call. `input_tokens` excludes cached tokens (Anthropic's convention);
/// OpenAI's `prompt_tokens` is [`Usage::prompt_tokens`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic only).
    pub cache_creation_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_creation_tokens += o.cache_creation_tokens;
    }
}

impl Usage {
    /// All input tokens, cached or not (OpenAI's `prompt_tokens`, a record's `tokens_in`).
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens
    }
}

/// Why generation stopped, whatever the dialect called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the turn (Anthropic `end_turn`, OpenAI `stop`).
    EndTurn,
    /// A stop sequence matched (Anthropic `stop_sequence`; OpenAI says `stop`).
    StopSequence,
    /// Output cap or context window reached (`max_tokens`, `model_context_window_exceeded`, `length`).
    MaxTokens,
    /// The model called tools (`tool_use`, `tool_calls`, legacy `function_call`).
    ToolUse,
    /// Refused or filtered (`refusal`, `content_filter`).
    Refusal,
    /// A server-tool turn paused (`pause_turn`, Anthropic only).
    PauseTurn,
    /// A value this gateway does not know.
    Other,
}

impl FinishReason {
    /// From Anthropic's `stop_reason`.
    pub fn from_anthropic(s: &str) -> Self {
        match s {
            "end_turn" => Self::EndTurn,
            "stop_sequence" => Self::StopSequence,
            "max_tokens" | "model_context_window_exceeded" => Self::MaxTokens,
            "tool_use" => Self::ToolUse,
            "refusal" => Self::Refusal,
            "pause_turn" => Self::PauseTurn,
            _ => Self::Other,
        }
    }

    /// From Bedrock Converse's `stopReason`. `guardrail_intervened` and `content_filtered` are
    /// refusals; `malformed_model_output` / `malformed_tool_use` are `Other`.
    pub fn from_bedrock(s: &str) -> Self {
        match s {
            "end_turn" => Self::EndTurn,
            "stop_sequence" => Self::StopSequence,
            "max_tokens" | "model_context_window_exceeded" => Self::MaxTokens,
            "tool_use" => Self::ToolUse,
            "guardrail_intervened" | "content_filtered" => Self::Refusal,
            _ => Self::Other,
        }
    }

    /// From OpenAI's `finish_reason`.
    pub fn from_openai(s: &str) -> Self {
        match s {
            "stop" => Self::EndTurn,
            "length" => Self::MaxTokens,
            "tool_calls" | "function_call" => Self::ToolUse,
            "content_filter" => Self::Refusal,
            _ => Self::Other,
        }
    }

    /// From Gemini's `finishReason`. `STOP` is `EndTurn` (the caller makes it `ToolUse` when
    /// the answer holds function calls); the safety, recitation, blocklist and PII stops are
    /// `Refusal`; failed generations (`MALFORMED_FUNCTION_CALL`, `UNEXPECTED_TOOL_CALL`,
    /// `TOO_MANY_TOOL_CALLS`, `MISSING_THOUGHT_SIGNATURE`, `MALFORMED_RESPONSE`, `LANGUAGE`,
    /// `OTHER`, ...) have no OpenAI reason and are `Other`.
    pub fn from_gemini(s: &str) -> Self {
        match s {
            "STOP" => Self::EndTurn,
            "MAX_TOKENS" => Self::MaxTokens,
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION" => Self::Refusal,
            _ => Self::Other,
        }
    }

    /// As Anthropic's `stop_reason` (`Other` becomes `end_turn`).
    pub fn anthropic(self) -> &'static str {
        match self {
            Self::EndTurn | Self::Other => "end_turn",
            Self::StopSequence => "stop_sequence",
            Self::MaxTokens => "max_tokens",
            Self::ToolUse => "tool_use",
            Self::Refusal => "refusal",
            Self::PauseTurn => "pause_turn",
        }
    }

    /// As OpenAI's `finish_reason` (`pause_turn` and `Other` become `stop`).
    pub fn openai(self) -> &'static str {
        match self {
            Self::EndTurn | Self::StopSequence | Self::PauseTurn | Self::Other => "stop",
            Self::MaxTokens => "length",
            Self::ToolUse => "tool_calls",
            Self::Refusal => "content_filter",
        }
    }

    /// As request records spell it: OpenAI's names, and `other` for a value no dialect
    /// mapping knows (so the record does not claim a normal stop).
    pub fn record_name(self) -> &'static str {
        match self {
            Self::Other => "other",
            known => known.openai(),
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.record_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_their_formats() {
        assert_eq!(
            Endpoint::from_path("/v1/messages/"),
            Some(Endpoint::Messages)
        );
        assert_eq!(Endpoint::from_path("/v2/x"), None);
        assert_eq!(Endpoint::CountTokens.error_wire(), WireApi::Messages);
        assert_eq!(Endpoint::Embeddings.client_wire(), None);
        assert!(WireApi::Messages.anthropic_errors());
        assert!(!WireApi::Responses.anthropic_errors());
    }

    #[test]
    fn finish_reasons_round_trip_through_each_spelling() {
        for s in ["stop", "length", "tool_calls", "content_filter"] {
            assert_eq!(FinishReason::from_openai(s).openai(), s);
        }
        assert_eq!(
            FinishReason::from_openai("function_call").openai(),
            "tool_calls"
        );
        assert_eq!(
            FinishReason::from_anthropic("tool_use"),
            FinishReason::ToolUse
        );
        assert_eq!(
            serde_json::to_string(&FinishReason::from_openai("weird")).unwrap(),
            "\"other\""
        );
        assert_eq!(
            serde_json::to_string(&FinishReason::PauseTurn).unwrap(),
            "\"stop\""
        );
    }

    #[test]
    fn prompt_tokens_count_cached_input() {
        let u = Usage {
            input_tokens: 3,
            output_tokens: 2,
            cache_read_tokens: 5,
            cache_creation_tokens: 1,
        };
        assert_eq!(u.prompt_tokens(), 9);
    }
}
