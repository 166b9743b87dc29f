//! Provider kinds: every provider that can be named in config, with what the gateway knows
//! about it (its wire format, default base URL, default key variable, how it authenticates).
//!
//! A kind is selectable by name (`kind = "groq"`); `base_url` and `api_key_env` override the
//! defaults (a self-hosted server, a corporate proxy, a mock).

use serde::Deserialize;

use crate::wire::WireApi;

/// Which provider a `[providers.NAME]` block talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI (Chat Completions, Responses, Embeddings).
    Openai,
    /// Azure OpenAI: deployment URLs, `api-key` header, `api-version` parameter.
    AzureOpenai,
    /// Anthropic's Messages API (`x-api-key`, `anthropic-version`).
    Anthropic,
    /// Google's Gemini API (generateContent, streamGenerateContent with SSE).
    Gemini,
    /// AWS Bedrock Runtime (Converse, ConverseStream), SigV4-signed.
    Bedrock,
    /// Mistral AI (OpenAI-compatible).
    Mistral,
    /// Groq (OpenAI-compatible).
    Groq,
    /// Together AI (OpenAI-compatible).
    Together,
    /// Fireworks AI (OpenAI-compatible).
    Fireworks,
    /// DeepSeek (OpenAI-compatible).
    Deepseek,
    /// xAI Grok (OpenAI-compatible).
    Xai,
    /// OpenRouter (OpenAI-compatible).
    Openrouter,
    /// Perplexity Sonar (OpenAI-compatible chat).
    Perplexity,
    /// Cerebras (OpenAI-compatible).
    Cerebras,
    /// Cloudflare Workers AI's OpenAI-compatible endpoint (needs `account_id`).
    #[serde(alias = "cloudflare")]
    CloudflareWorkersAi,
    /// A local Ollama server's OpenAI-compatible API.
    Ollama,
    /// A vLLM server's OpenAI-compatible API.
    Vllm,
    /// Any other server that speaks OpenAI Chat Completions (`base_url` required).
    OpenaiCompatible,
    /// A built-in provider that answers locally (offline use and testing agents).
    Mock,
}

/// How a provider expects its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `authorization: Bearer KEY`.
    Bearer,
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
    /// `api-key: KEY` (Azure OpenAI).
    AzureApiKey,
    /// `x-goog-api-key: KEY` (Gemini).
    GoogApiKey,
    /// AWS Signature Version 4 from the standard AWS environment variables (Bedrock); a
    /// Bedrock API key in `api_key_env` is sent as a bearer token instead.
    SigV4,
}

/// What the gateway knows about a provider kind.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    /// The name in config (`kind = "…"`).
    pub name: &'static str,
    /// The provider's product name, for docs and errors.
    pub label: &'static str,
    /// The wire format of its chat endpoint.
    pub wire: WireApi,
    /// The base URL used when `base_url` is not set; `{region}`, `{resource}` and
    /// `{account_id}` are filled from the provider's config.
    pub default_base_url: Option<&'static str>,
    /// The environment variable holding the key when `api_key_env` and `base_url` are not set.
    pub default_key_env: Option<&'static str>,
    /// How the credential is sent.
    pub auth: AuthStyle,
    /// Serves OpenAI's Responses API natively.
    pub native_responses: bool,
    /// Serves `POST /embeddings` in OpenAI's format.
    pub embeddings: bool,
}

impl ProviderKind {
    /// Every kind, in the order the README lists them.
    pub const ALL: [ProviderKind; 19] = [
        ProviderKind::Openai,
        ProviderKind::AzureOpenai,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Bedrock,
        ProviderKind::Mistral,
        ProviderKind::Groq,
        ProviderKind::Together,
        ProviderKind::Fireworks,
        ProviderKind::Deepseek,
        ProviderKind::Xai,
        ProviderKind::Openrouter,
        ProviderKind::Perplexity,
        ProviderKind::Cerebras,
        ProviderKind::CloudflareWorkersAi,
        ProviderKind::Ollama,
        ProviderKind::Vllm,
        ProviderKind::OpenaiCompatible,
        ProviderKind::Mock,
    ];

    /// The kind's fixed facts.
    pub fn spec(self) -> KindSpec {
        use AuthStyle::*;
        use WireApi::*;
        let (name, label, wire, url, key, auth, responses, embeddings) = match self {
            Self::Openai => (
                "openai",
                "OpenAI",
                Chat,
                Some("https://api.openai.com/v1"),
                Some("OPENAI_API_KEY"),
                Bearer,
                true,
                true,
            ),
            Self::AzureOpenai => (
                "azure-openai",
                "Azure OpenAI",
                Chat,
                Some("https://{resource}.openai.azure.com/openai"),
                Some("AZURE_OPENAI_API_KEY"),
                AzureApiKey,
                false,
                true,
            ),
            Self::Anthropic => (
                "anthropic",
                "Anthropic",
                Messages,
                Some("https://api.anthropic.com/v1"),
                Some("ANTHROPIC_API_KEY"),
                XApiKey,
                false,
                false,
            ),
            Self::Gemini => (
                "gemini",
                "Google Gemini",
                Gemini,
                Some("https://generativelanguage.googleapis.com/v1beta"),
                Some("GEMINI_API_KEY"),
                GoogApiKey,
                false,
                false,
            ),
            Self::Bedrock => (
                "bedrock",
                "AWS Bedrock",
                Converse,
                Some("https://bedrock-runtime.{region}.amazonaws.com"),
                None,
                SigV4,
                false,
                false,
            ),
            Self::Mistral => (
                "mistral",
                "Mistral AI",
                Chat,
                Some("https://api.mistral.ai/v1"),
                Some("MISTRAL_API_KEY"),
                Bearer,
                false,
                true,
            ),
            Self::Groq => (
                "groq",
                "Groq",
                Chat,
                Some("https://api.groq.com/openai/v1"),
                Some("GROQ_API_KEY"),
                Bearer,
                false,
                false,
            ),
            Self::Together => (
                "together",
                "Together AI",
                Chat,
                Some("https://api.together.xyz/v1"),
                Some("TOGETHER_API_KEY"),
                Bearer,
                false,
                true,
            ),
            Self::Fireworks => (
                "fireworks",
                "Fireworks AI",
                Chat,
                Some("https://api.fireworks.ai/inference/v1"),
                Some("FIREWORKS_API_KEY"),
                Bearer,
                false,
                true,
            ),
            Self::Deepseek => (
                "deepseek",
                "DeepSeek",
                Chat,
                Some("https://api.deepseek.com/v1"),
                Some("DEEPSEEK_API_KEY"),
                Bearer,
                false,
                false,
            ),
            Self::Xai => (
                "xai",
                "xAI",
                Chat,
                Some("https://api.x.ai/v1"),
                Some("XAI_API_KEY"),
                Bearer,
                false,
                false,
            ),
            Self::Openrouter => (
                "openrouter",
                "OpenRouter",
                Chat,
                Some("https://openrouter.ai/api/v1"),
                Some("OPENROUTER_API_KEY"),
                Bearer,
                false,
                false,
            ),
            Self::Perplexity => (
                "perplexity",
                "Perplexity",
                Chat,
                Some("https://api.perplexity.ai"),
                Some("PERPLEXITY_API_KEY"),
                Bearer,
                false,
                false,
            ),
            Self::Cerebras => (
                "cerebras",
                "Cerebras",
                Chat,
                Some("https://api.cerebras.ai/v1"),
                Some("CEREBRAS_API_KEY"),
                Bearer,
                false,
                false,
            ),
            Self::CloudflareWorkersAi => (
                "cloudflare-workers-ai",
                "Cloudflare Workers AI",
                Chat,
                Some("https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1"),
                Some("CLOUDFLARE_API_TOKEN"),
                Bearer,
                false,
                true,
            ),
            Self::Ollama => (
                "ollama",
                "Ollama",
                Chat,
                Some("http://127.0.0.1:11434/v1"),
                None,
                Bearer,
                false,
                true,
            ),
            Self::Vllm => (
                "vllm",
                "vLLM",
                Chat,
                Some("http://127.0.0.1:8000/v1"),
                None,
                Bearer,
                false,
                true,
            ),
            Self::OpenaiCompatible => (
                "openai-compatible",
                "OpenAI-compatible server",
                Chat,
                None,
                None,
                Bearer,
                false,
                true,
            ),
            Self::Mock => (
                "mock",
                "built-in mock",
                Chat,
                None,
                None,
                Bearer,
                false,
                true,
            ),
        };
        KindSpec {
            name,
            label,
            wire,
            default_base_url: url,
            default_key_env: key,
            auth,
            native_responses: responses,
            embeddings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct K {
        kind: ProviderKind,
    }

    #[test]
    fn every_kind_parses_by_its_name() {
        for kind in ProviderKind::ALL {
            let spec = kind.spec();
            let k: K = toml::from_str(&format!("kind = \"{}\"", spec.name)).unwrap();
            assert_eq!(k.kind, kind, "{}", spec.name);
        }
        let k: K = toml::from_str("kind = \"cloudflare\"").unwrap();
        assert_eq!(k.kind, ProviderKind::CloudflareWorkersAi);
    }

    #[test]
    fn at_least_fifteen_real_providers() {
        let real = ProviderKind::ALL
            .iter()
            .filter(|k| !matches!(k, ProviderKind::Mock | ProviderKind::OpenaiCompatible))
            .count();
        assert!(real >= 15, "{real}");
    }

    #[test]
    fn remote_providers_use_https_and_name_a_credential() {
        for kind in ProviderKind::ALL {
            let spec = kind.spec();
            if let Some(url) = spec.default_base_url {
                let local = url.starts_with("http://127.0.0.1");
                assert!(local || url.starts_with("https://"), "{url}");
                assert!(
                    local || spec.default_key_env.is_some() || spec.auth == AuthStyle::SigV4,
                    "{}",
                    spec.name
                );
            }
        }
    }
}
