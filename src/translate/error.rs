//! `TranslateError`: why a body could not be translated between dialects.

/// Why a request, response or stream event could not be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    /// The body is not valid JSON or does not have the dialect's shape.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read (`OpenAI request`, `Anthropic stream event`, ...).
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A field the target provider cannot honour; never dropped silently.
    #[error("field `{field}` is not supported by {target}")]
    Unsupported {
        /// The field (path and, where it matters, the value), e.g. `response_format.type=json_object`.
        field: String,
        /// The provider dialect that cannot express it (`Anthropic Messages`, `OpenAI Chat Completions`).
        target: &'static str,
    },
}

/// The largest content-block index a provider's stream may use. Indexes come from the
/// provider (untrusted) and size a lookup table, so one beyond this refuses the event rather
/// than allocating for it; real streams use a handful.
pub(crate) const MAX_BLOCK_INDEX: usize = 1024;

/// The Anthropic Messages dialect, as named in errors.
pub(crate) const ANTHROPIC: &str = "Anthropic Messages";
/// The Google Gemini API dialect, as named in errors.
pub(crate) const GEMINI: &str = "Google Gemini";
/// The AWS Bedrock Converse dialect, as named in errors.
pub(crate) const BEDROCK: &str = "AWS Bedrock Converse";
/// The OpenAI Chat Completions dialect, as named in errors.
pub(crate) const OPENAI: &str = "OpenAI Chat Completions";

impl TranslateError {
    /// A field `target` cannot express.
    pub(crate) fn unsupported(field: impl Into<String>, target: &'static str) -> Self {
        Self::Unsupported {
            field: field.into(),
            target,
        }
    }

    /// A body or event that could not be read.
    pub(crate) fn invalid(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            what,
            reason: reason.to_string(),
        }
    }
}
