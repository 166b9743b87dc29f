//! Each dialect's usage object to and from the shared [`crate::wire::Usage`] (the finish
//! reasons' spellings are plain strings and live with [`crate::wire::FinishReason`]).

use super::{anthropic_types as an, bedrock_types as br, gemini_types as gm, openai_types as oa};
use crate::wire::Usage;

/// The dialects' usage objects, to and from the shared [`Usage`].
impl Usage {
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
