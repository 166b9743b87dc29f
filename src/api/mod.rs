//! The client-facing API: what each endpoint accepts, the borrowed view of a request body,
//! and errors in the client's own dialect.

mod error;
mod json_scan;
mod openai;

pub use error::{ApiError, ErrorKind};
pub use json_scan::{find_top_level_value, JsonSpan};
pub use openai::{ChatRequestView, JsonScratch, RequestBodyError, Usage};

/// The endpoints the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
}

impl Endpoint {
    /// Maps a request path to an endpoint (`None`: 404).
    pub fn from_path(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" | "/chat/completions" => Some(Self::ChatCompletions),
            "/v1/embeddings" | "/embeddings" => Some(Self::Embeddings),
            "/v1/models" | "/models" => Some(Self::Models),
            _ => None,
        }
    }

    /// The path below the provider's base URL (e.g. `/chat/completions` after `/v1`).
    pub fn upstream_suffix(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Embeddings => "/embeddings",
            Self::Models => "/models",
        }
    }

    /// The name used in request records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
        }
    }
}
