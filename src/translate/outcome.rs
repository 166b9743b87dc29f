//! What a call produced, in dialect-neutral terms: `TokenUsage` and `StopReason`, with the
//! mappings to and from each dialect's spelling.

use super::{anthropic_types as an, bedrock_types as br, gemini_types as gm, openai_types as oa};

/// Token counts of a call. `input_tokens` excludes cached tokens (Anthropic's convention);
/// OpenAI's `prompt_tokens` is `input_tokens + cache_read_tokens + cache_creation_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic only).
    pub cache_creation_tokens: u64,
}

impl TokenUsage {
    /// From Anthropic `usage`.
    pub fn from_anthropic(u: &an::Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens.unwrap_or(0),
            cache_creation_tokens: u.cache_creation_input_tokens.unwrap_or(0),
        }
    }

    /// From OpenAI `usage`: cached tokens are taken out of `prompt_tokens`.
    pub fn from_openai(u: &oa::Usage) -> Self {
        let cached = u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Self {
            input_tokens: u.prompt_tokens.saturating_sub(cached),
            output_tokens: u.completion_tokens,
            cache_read_tokens: cached,
            cache_creation_tokens: 0,
        }
    }

    /// From Gemini `usageMetadata`: cached tokens are taken out of `promptTokenCount`,
    /// tool-use prompt tokens added to the input, thinking tokens counted as output (as
    /// OpenAI counts reasoning tokens in `completion_tokens`).
    pub fn from_gemini(u: &gm::UsageMetadata) -> Self {
        Self {
            input_tokens: (u.prompt_token_count + u.tool_use_prompt_token_count)
                .saturating_sub(u.cached_content_token_count),
            output_tokens: u.candidates_token_count + u.thoughts_token_count,
            cache_read_tokens: u.cached_content_token_count,
            cache_creation_tokens: 0,
        }
    }

    /// From Bedrock Converse `usage` (`inputTokens` excludes cache reads and writes, as
    /// Anthropic's `input_tokens` does).
    pub fn from_bedrock(u: &br::Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens.unwrap_or(0),
            cache_creation_tokens: u.cache_write_input_tokens.unwrap_or(0),
        }
    }

    /// All input tokens, cached or not (OpenAI's `prompt_tokens`).
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens
    }

    /// As Anthropic `usage` (cache fields always present, as Anthropic sends them).
    pub fn to_anthropic(self) -> an::Usage {
        an::Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_creation_input_tokens: Some(self.cache_creation_tokens),
            cache_read_input_tokens: Some(self.cache_read_tokens),
        }
    }

    /// As OpenAI `usage` (`prompt_tokens_details.cached_tokens` always present).
    pub fn to_openai(self) -> oa::Usage {
        let prompt = self.prompt_tokens();
        oa::Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt + self.output_tokens,
            prompt_tokens_details: Some(oa::PromptTokensDetails {
                cached_tokens: Some(self.cache_read_tokens),
            }),
        }
    }
}

impl From<TokenUsage> for crate::api::Usage {
    fn from(u: TokenUsage) -> Self {
        Self {
            input_tokens: u.prompt_tokens(),
            output_tokens: u.output_tokens,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
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

impl StopReason {
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
}
