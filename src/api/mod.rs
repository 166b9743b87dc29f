//! The client-facing API: what each endpoint accepts, the borrowed view of a request body,
//! and errors in the client's own dialect.

mod error;
mod json_scan;
mod openai;

pub use error::{ApiError, ErrorKind};
pub use json_scan::{find_top_level_value, JsonSpan};
pub use openai::{ChatRequestView, JsonScratch, RequestBodyError, Usage};

/// The longest client-supplied string copied into a record, a log line or an error message;
/// longer ones are cut (at a character boundary) and marked with `…`.
pub const MAX_ECHOED_CHARS: usize = 256;

/// `s` cut to [`MAX_ECHOED_CHARS`] characters, with `…` when it was longer: client strings
/// that the gateway echoes (a model name in an error, a record field) stay small.
pub fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHOED_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => {
            let mut out = String::with_capacity(cut + 3);
            out.push_str(s.get(..cut).unwrap_or_default());
            out.push('…');
            out
        }
    }
}

/// The API dialects clients and providers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions / Embeddings.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
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

    /// The dialect of the endpoint's requests, responses and errors.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }

    /// The wire format a client of this endpoint speaks (`None`: not a generation endpoint).
    pub fn client_wire(self) -> Option<crate::translate::WireApi> {
        use crate::translate::WireApi;
        match self {
            Self::ChatCompletions => Some(WireApi::Chat),
            Self::Messages => Some(WireApi::Messages),
            Self::Responses => Some(WireApi::Responses),
            _ => None,
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
