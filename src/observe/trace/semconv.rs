//! The OpenTelemetry names the gateway's spans use: GenAI semantic conventions (v1.37,
//! `gen_ai.provider.name` and friends) and the HTTP ones for the server span. One place, so
//! a rename in the conventions is one edit.

use crate::config::ProviderKind;

/// The semantic-conventions version the spans follow (the scope's schema URL).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.37.0";

/// `gen_ai.operation.name`.
pub const OPERATION: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name`.
pub const PROVIDER: &str = "gen_ai.provider.name";
/// `gen_ai.request.model`.
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.response.model`.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.usage.input_tokens`.
pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`.
pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.response.finish_reasons` (a string array).
pub const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `error.type`.
pub const ERROR_TYPE: &str = "error.type";
/// `http.request.method`.
pub const HTTP_METHOD: &str = "http.request.method";
/// `http.route`.
pub const HTTP_ROUTE: &str = "http.route";
/// `http.response.status_code`.
pub const HTTP_STATUS: &str = "http.response.status_code";
/// `server.address` (the provider's host on a client span).
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`.
pub const SERVER_PORT: &str = "server.port";

/// The well-known `gen_ai.provider.name` of a provider kind; kinds the conventions don't
/// list keep their config name (`kind = "..."`).
pub fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::AzureOpenai => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Mistral => "mistral_ai",
        ProviderKind::Groq => "groq",
        ProviderKind::Deepseek => "deepseek",
        ProviderKind::Xai => "x_ai",
        ProviderKind::Perplexity => "perplexity",
        ProviderKind::Together => "together",
        ProviderKind::Fireworks => "fireworks",
        ProviderKind::Openrouter => "openrouter",
        ProviderKind::Cerebras => "cerebras",
        ProviderKind::CloudflareWorkersAi => "cloudflare-workers-ai",
        ProviderKind::Ollama => "ollama",
        ProviderKind::Vllm => "vllm",
        ProviderKind::OpenaiCompatible => "openai-compatible",
        ProviderKind::Mock => "mock",
    }
}

/// `gen_ai.operation.name` of an endpoint (the record's `endpoint`): the conventions' `chat`
/// for the three chat dialects, `embeddings`; the gateway's own name otherwise.
pub fn operation_name(endpoint: &str) -> &'static str {
    match endpoint {
        "chat.completions" | "messages" | "responses" => "chat",
        "embeddings" => "embeddings",
        "messages.count_tokens" => "count_tokens",
        "models" => "list_models",
        _ => "unknown",
    }
}

/// The HTTP method and route of an endpoint (the server span's name and `http.route`).
pub fn http_route(endpoint: &str) -> (&'static str, &'static str) {
    match endpoint {
        "chat.completions" => ("POST", "/v1/chat/completions"),
        "embeddings" => ("POST", "/v1/embeddings"),
        "models" => ("GET", "/v1/models"),
        "messages" => ("POST", "/v1/messages"),
        "messages.count_tokens" => ("POST", "/v1/messages/count_tokens"),
        "responses" => ("POST", "/v1/responses"),
        _ => ("POST", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Endpoint;

    #[test]
    fn every_endpoint_has_an_operation_and_a_route() {
        for e in [
            Endpoint::ChatCompletions,
            Endpoint::Embeddings,
            Endpoint::Models,
            Endpoint::Messages,
            Endpoint::CountTokens,
            Endpoint::Responses,
        ] {
            assert_ne!(operation_name(e.as_str()), "unknown", "{e:?}");
            let (_, route) = http_route(e.as_str());
            assert_eq!(Endpoint::from_path(route), Some(e));
        }
    }

    #[test]
    fn well_known_providers_use_the_conventions_names() {
        assert_eq!(provider_name(ProviderKind::Bedrock), "aws.bedrock");
        assert_eq!(provider_name(ProviderKind::Gemini), "gcp.gemini");
        assert_eq!(provider_name(ProviderKind::AzureOpenai), "azure.ai.openai");
    }
}
