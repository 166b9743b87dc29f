//! A provider as the data plane sees it: where it is, which credential it refers to, its
//! timeouts. Pure data compiled from config; what it takes to reach it (resolved addresses,
//! TLS clients, the credentials themselves) lives in the upstream registry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AuthStyle, ConfigError, KindSpec, ProviderConfig, ProviderKind};
use crate::wire::WireApi;

/// Whether a provider is reached over plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` (local providers, mocks).
    Http,
    /// `https://` through rustls.
    Https,
}

/// A provider's network address, parsed from its `base_url`.
#[derive(Debug)]
pub struct ProviderAddr {
    /// http or https.
    pub scheme: Scheme,
    /// Host name or IP literal (used for SNI and the Host header).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The `Host` header value (`host` or `host:port`).
    pub authority: String,
    /// The path prefix before the endpoint, e.g. `/v1` (no trailing slash).
    pub path_prefix: String,
}

/// Which credential a provider's requests carry: a reference the upstream registry reads,
/// never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    /// None (local providers, mocks).
    None,
    /// An API key in this environment variable.
    KeyEnv(String),
    /// AWS credentials from the standard environment variables (SigV4).
    AwsEnv,
}

/// An upstream provider, compiled from config.
#[derive(Debug)]
pub struct Provider {
    /// The config key; also the name in records and `x-infergate-provider`.
    pub name: String,
    /// Which provider it is.
    pub kind: ProviderKind,
    /// What the gateway knows about the kind (wire format, auth style, endpoints).
    pub spec: KindSpec,
    /// Serves OpenAI's Responses API itself (the kind's default or `responses_api`).
    pub native_responses: bool,
    /// Azure OpenAI's `api-version` query parameter.
    pub api_version: Option<String>,
    /// AWS region (Bedrock), for the signature.
    pub region: Option<String>,
    /// Where it serves from, as configured (`region`; never taken from the environment):
    /// keys and tenants tagged with a region reach only targets in it.
    pub region_tag: Option<String>,
    /// Where it is (absent for the built-in mock).
    pub addr: Option<ProviderAddr>,
    /// The credential its requests carry.
    pub credential: CredentialRef,
    /// Extra CA certificates to trust for this provider (PEM).
    pub tls_ca_file: Option<PathBuf>,
    /// HTTP/2 connections per shard when the provider is spoken to over HTTP/2 (`http2`),
    /// `None` for HTTP/1.1 only.
    pub http2: Option<std::num::NonZeroUsize>,
    /// Why the provider can't be used right now (its key variable is unset), if so.
    pub unavailable: Option<String>,
    /// Connect timeout (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time from the request's last byte to the response head.
    pub first_byte_timeout: Duration,
    /// Whole-call bound.
    pub total_timeout: Duration,
    /// Longest silence between two reads of an answer's body or stream.
    pub stream_idle_timeout: Duration,
    /// Idle connections kept per shard.
    pub max_idle_per_shard: usize,
    /// Connection pool key: every attribute that makes two connections interchangeable.
    pub pool_key: Arc<str>,
    /// Client headers this provider is sent.
    pub forward_headers: super::HeaderAllowList,
    /// Most attempts in flight at once over all shards (`None`: unlimited).
    pub max_concurrency: Option<u32>,
    /// Its attempts in flight, shared with every table compiled from the same
    /// [`RouteState`](super::RouteState) (a fresh one until the table compile sets it).
    pub load: Arc<super::ProviderLoad>,
}

impl Provider {
    /// Builds a provider from its config; a credential whose variables are unset leaves it
    /// unavailable (skipped, with the reason) rather than refused.
    pub fn compile(name: &str, cfg: &ProviderConfig) -> Result<Self, ConfigError> {
        let spec = cfg.kind.spec();
        let region = region(cfg);
        let addr = address(name, cfg, &spec, region.as_deref())?;
        if cfg.kind == ProviderKind::Bedrock && region.is_none() {
            return Err(ConfigError::Invalid(format!(
                "provider {name}: bedrock needs `region` (or AWS_REGION) to sign requests"
            )));
        }
        if let Some(bad) = super::HeaderAllowList::refused_entry(&cfg.forward_headers) {
            return Err(ConfigError::Invalid(format!(
                "provider {name}: forward_headers may not name {bad:?} (the gateway sets framing and credential headers itself)"
            )));
        }
        if cfg.max_concurrency == Some(0) {
            return Err(ConfigError::Invalid(format!(
                "provider {name}: max_concurrency must be at least 1 (leave it out for no limit)"
            )));
        }
        let (credential, unavailable) = credential(cfg, &spec);
        let http2 = match (cfg.http2, std::num::NonZeroUsize::new(cfg.h2_connections)) {
            (false, _) => None,
            (true, Some(n)) => Some(n),
            (true, None) => {
                return Err(ConfigError::Invalid(format!(
                    "provider {name}: h2_connections must be at least 1"
                )))
            }
        };
        let pool_key = match &addr {
            Some(a) => format!("{}|{:?}|{}|{}", name, a.scheme, a.authority, a.path_prefix),
            None => format!("{name}|mock"),
        };
        Ok(Self {
            name: name.to_string(),
            kind: cfg.kind,
            spec,
            native_responses: cfg.responses_api.unwrap_or(spec.native_responses),
            api_version: match cfg.kind {
                ProviderKind::AzureOpenai => Some(
                    cfg.api_version
                        .clone()
                        .unwrap_or_else(|| AZURE_API_VERSION.to_string()),
                ),
                _ => cfg.api_version.clone(),
            },
            region,
            region_tag: cfg.region.clone().filter(|r| !r.trim().is_empty()),
            addr,
            credential,
            tls_ca_file: cfg.tls_ca_file.clone(),
            http2,
            unavailable,
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            first_byte_timeout: Duration::from_millis(cfg.first_byte_timeout_ms),
            stream_idle_timeout: Duration::from_millis(
                cfg.stream_idle_timeout_ms
                    .unwrap_or(cfg.first_byte_timeout_ms),
            ),
            total_timeout: Duration::from_millis(cfg.total_timeout_ms),
            max_idle_per_shard: cfg.max_idle_per_shard,
            pool_key: Arc::from(pool_key),
            forward_headers: super::HeaderAllowList::new(spec.wire, &cfg.forward_headers),
            max_concurrency: cfg.max_concurrency,
            load: Arc::default(),
        })
    }

    /// A permit for one attempt at this provider, unless `max_concurrency` attempts are in
    /// flight already (over all shards).
    pub fn try_acquire(&self) -> Option<super::InFlightPermit> {
        self.load.try_acquire(self.max_concurrency)
    }

    /// Whether the provider is at its `max_concurrency` now.
    pub fn is_full(&self) -> bool {
        self.load.is_full(self.max_concurrency)
    }

    /// The wire format this provider is sent for a client speaking `client` on `endpoint`:
    /// the kind's own format, except that a provider serving the Responses API natively gets
    /// Responses clients as they are.
    pub fn wire_for(&self, endpoint: crate::wire::Endpoint) -> WireApi {
        if endpoint == crate::wire::Endpoint::Responses && self.native_responses {
            WireApi::Responses
        } else {
            self.spec.wire
        }
    }

    /// The request path (below the authority, query included) for `wire` on `endpoint`.
    pub fn request_path(
        &self,
        endpoint: crate::wire::Endpoint,
        wire: WireApi,
        model: &str,
        stream: bool,
    ) -> String {
        let mut path = String::new();
        self.write_request_path(&mut path, endpoint, wire, model, stream);
        path
    }

    /// Writes [`Self::request_path`] into `out`: the request head is built this way, without
    /// a `String` per request.
    pub fn write_request_path(
        &self,
        out: &mut impl std::fmt::Write,
        endpoint: crate::wire::Endpoint,
        wire: WireApi,
        model: &str,
        stream: bool,
    ) {
        use crate::wire::Endpoint;
        let prefix = self.addr.as_ref().map_or("", |a| a.path_prefix.as_str());
        let azure = self.kind == ProviderKind::AzureOpenai;
        let op = match (endpoint, wire) {
            (Endpoint::Embeddings, _) => "/embeddings",
            (Endpoint::Models, _) => "/models",
            (Endpoint::CountTokens, _) => "/messages/count_tokens",
            (_, WireApi::Chat) => "/chat/completions",
            (_, WireApi::Messages) => "/messages",
            (_, WireApi::Responses) => "/responses",
            (_, WireApi::Gemini) => {
                let method = if stream {
                    ":streamGenerateContent?alt=sse"
                } else {
                    ":generateContent"
                };
                let model = model.strip_prefix("models/").unwrap_or(model);
                let _ = write!(out, "{prefix}/models/{}{method}", path_segment(model));
                return;
            }
            (_, WireApi::Converse) => {
                let method = if stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                let _ = write!(out, "{prefix}/model/{}/{method}", path_segment(model));
                return;
            }
        };
        match (&self.api_version, azure) {
            (Some(v), true) if op == "/responses" => {
                let _ = write!(out, "{prefix}{op}?api-version={v}");
            }
            (Some(v), true) => {
                let _ = write!(
                    out,
                    "{prefix}/deployments/{}{op}?api-version={v}",
                    path_segment(model)
                );
            }
            _ => {
                let _ = write!(out, "{prefix}{op}");
            }
        }
    }

    /// How the credential is sent.
    pub fn auth_style(&self) -> AuthStyle {
        match self.spec.auth {
            // A Bedrock API key is a bearer token.
            AuthStyle::SigV4 if matches!(self.credential, CredentialRef::KeyEnv(_)) => {
                AuthStyle::Bearer
            }
            other => other,
        }
    }
}

/// The AWS region: the config's, else `AWS_REGION` / `AWS_DEFAULT_REGION`.
fn region(cfg: &ProviderConfig) -> Option<String> {
    cfg.region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.trim().is_empty())
}

/// The provider's address: its `base_url`, or the kind's default filled in.
fn address(
    name: &str,
    cfg: &ProviderConfig,
    spec: &KindSpec,
    region: Option<&str>,
) -> Result<Option<ProviderAddr>, ConfigError> {
    let base_url = match (&cfg.base_url, spec.default_base_url) {
        (Some(url), _) => url.clone(),
        (None, Some(template)) => fill_template(name, template, cfg, region)?,
        (None, None) if cfg.kind == ProviderKind::Mock => return Ok(None),
        (None, None) => {
            return Err(ConfigError::Invalid(format!(
                "provider {name}: base_url is required for kind {}",
                spec.name
            )))
        }
    };
    if cfg.kind == ProviderKind::Mock {
        return Ok(None);
    }
    parse_base_url(name, &base_url).map(Some)
}

/// The credential a provider refers to, and why it is unavailable when the variables it
/// names are unset. The kind's key variable applies to the kind's own URL; a provider
/// pointed elsewhere names its key variable itself.
fn credential(cfg: &ProviderConfig, spec: &KindSpec) -> (CredentialRef, Option<String>) {
    let set = |n: &str| std::env::var(n).is_ok_and(|v| !v.trim().is_empty());
    let key_env = match (&cfg.api_key_env, &cfg.base_url) {
        (Some(var), _) => Some(var.as_str()),
        (None, None) => spec.default_key_env,
        (None, Some(_)) => None,
    };
    match key_env {
        Some(var) if set(var) => (CredentialRef::KeyEnv(var.to_string()), None),
        Some(var) => (
            CredentialRef::KeyEnv(var.to_string()),
            Some(format!("environment variable {var} is not set")),
        ),
        None if spec.auth == AuthStyle::SigV4 => {
            let missing = !(set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"));
            let why = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (or name a Bedrock API key in api_key_env)";
            (CredentialRef::AwsEnv, missing.then(|| why.to_string()))
        }
        None => (CredentialRef::None, None),
    }
}

/// Azure OpenAI's GA data-plane `api-version` used when the config names none.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// Fills `{region}`, `{resource}` and `{account_id}` in a kind's default base URL.
fn fill_template(
    name: &str,
    template: &str,
    cfg: &ProviderConfig,
    region: Option<&str>,
) -> Result<String, ConfigError> {
    let mut url = template.to_string();
    for (slot, value, field) in [
        ("{region}", region, "region"),
        ("{resource}", cfg.resource.as_deref(), "resource"),
        ("{account_id}", cfg.account_id.as_deref(), "account_id"),
    ] {
        if url.contains(slot) {
            let v = value.filter(|v| !v.is_empty()).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "provider {name}: kind {} needs `{field}` (or base_url)",
                    cfg.kind.spec().name
                ))
            })?;
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::Invalid(format!(
                    "provider {name}: `{field}` {v:?} may hold letters, digits, - and _ only"
                )));
            }
            url = url.replace(slot, v);
        }
    }
    Ok(url)
}

/// Percent-encodes a model id for one path segment (Bedrock ids hold `:`, Azure deployment
/// names are free text); unreserved characters stay.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_base_url(name: &str, url: &str) -> Result<ProviderAddr, ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(format!("provider {name}: base_url {url:?}: {why}"));
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(bad("must start with http:// or https://"));
    };
    let (hostport, path) = rest
        .find('/')
        .and_then(|i| rest.split_at_checked(i))
        .unwrap_or((rest, ""));
    if hostport.is_empty() {
        return Err(bad("no host"));
    }
    let default_port = if scheme == Scheme::Https { 443 } else { 80 };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        // IPv6 literal: [::1]:port
        let (host, after) = h
            .split_once(']')
            .ok_or_else(|| bad("unterminated IPv6 literal"))?;
        let port = match after {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad port"))?,
        };
        (host.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
            None => (hostport.to_string(), default_port),
        }
    };
    let authority = if port == default_port {
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        }
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(ProviderAddr {
        scheme,
        host,
        port,
        authority,
        path_prefix: path.trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ProviderConfig {
        ProviderConfig::openai_for_tests(url)
    }

    fn kind_cfg(kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            kind,
            base_url: None,
            region: Some("eu-west-1".into()),
            resource: Some("contoso".into()),
            account_id: Some("acct123".into()),
            ..cfg("http://unused")
        }
    }

    #[test]
    fn kinds_reach_their_documented_endpoints() {
        use crate::wire::Endpoint::{ChatCompletions, Embeddings, Responses};
        use ProviderKind::*;
        let cases: &[(ProviderKind, crate::wire::Endpoint, bool, &str, &str)] = &[
            (
                Openai,
                ChatCompletions,
                false,
                "api.openai.com",
                "/v1/chat/completions",
            ),
            (Openai, Responses, true, "api.openai.com", "/v1/responses"),
            (
                AzureOpenai,
                ChatCompletions,
                false,
                "contoso.openai.azure.com",
                "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            ),
            (
                AzureOpenai,
                Embeddings,
                false,
                "contoso.openai.azure.com",
                "/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21",
            ),
            (
                Anthropic,
                ChatCompletions,
                false,
                "api.anthropic.com",
                "/v1/messages",
            ),
            (
                Gemini,
                ChatCompletions,
                false,
                "generativelanguage.googleapis.com",
                "/v1beta/models/gpt-4o:generateContent",
            ),
            (
                Gemini,
                ChatCompletions,
                true,
                "generativelanguage.googleapis.com",
                "/v1beta/models/gpt-4o:streamGenerateContent?alt=sse",
            ),
            (
                Bedrock,
                ChatCompletions,
                true,
                "bedrock-runtime.eu-west-1.amazonaws.com",
                "/model/gpt-4o/converse-stream",
            ),
            (
                Mistral,
                ChatCompletions,
                false,
                "api.mistral.ai",
                "/v1/chat/completions",
            ),
            (
                Groq,
                ChatCompletions,
                false,
                "api.groq.com",
                "/openai/v1/chat/completions",
            ),
            (
                Together,
                ChatCompletions,
                false,
                "api.together.xyz",
                "/v1/chat/completions",
            ),
            (
                Fireworks,
                ChatCompletions,
                false,
                "api.fireworks.ai",
                "/inference/v1/chat/completions",
            ),
            (
                Deepseek,
                ChatCompletions,
                false,
                "api.deepseek.com",
                "/v1/chat/completions",
            ),
            (
                Xai,
                ChatCompletions,
                false,
                "api.x.ai",
                "/v1/chat/completions",
            ),
            (
                Openrouter,
                ChatCompletions,
                false,
                "openrouter.ai",
                "/api/v1/chat/completions",
            ),
            (
                Perplexity,
                ChatCompletions,
                false,
                "api.perplexity.ai",
                "/chat/completions",
            ),
            (
                Cerebras,
                ChatCompletions,
                false,
                "api.cerebras.ai",
                "/v1/chat/completions",
            ),
            (
                CloudflareWorkersAi,
                ChatCompletions,
                false,
                "api.cloudflare.com",
                "/client/v4/accounts/acct123/ai/v1/chat/completions",
            ),
            (
                Ollama,
                ChatCompletions,
                false,
                "127.0.0.1:11434",
                "/v1/chat/completions",
            ),
            (
                Vllm,
                ChatCompletions,
                false,
                "127.0.0.1:8000",
                "/v1/chat/completions",
            ),
        ];
        for &(kind, endpoint, stream, authority, path) in cases {
            let p = Provider::compile("p", &kind_cfg(kind)).unwrap();
            let wire = p.wire_for(endpoint);
            assert_eq!(p.addr.as_ref().unwrap().authority, authority, "{kind:?}");
            assert_eq!(
                p.request_path(endpoint, wire, "gpt-4o", stream),
                path,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn bedrock_model_ids_are_one_path_segment() {
        let p = Provider::compile("p", &kind_cfg(ProviderKind::Bedrock)).unwrap();
        assert_eq!(
            p.request_path(
                crate::wire::Endpoint::Messages,
                WireApi::Converse,
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                false
            ),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
    }

    #[test]
    fn templates_need_their_fields() {
        let mut c = kind_cfg(ProviderKind::AzureOpenai);
        c.resource = None;
        let err = Provider::compile("p", &c).unwrap_err().to_string();
        assert!(err.contains("resource"), "{err}");
        let mut c = kind_cfg(ProviderKind::CloudflareWorkersAi);
        c.account_id = Some("a/b".into());
        assert!(Provider::compile("p", &c).is_err());
    }

    #[test]
    fn default_key_variable_applies_to_the_default_url_only() {
        let c = kind_cfg(ProviderKind::Groq);
        std::env::remove_var("GROQ_API_KEY");
        let p = Provider::compile("p", &c).unwrap();
        assert!(p.unavailable.as_deref().unwrap().contains("GROQ_API_KEY"));
        let c = ProviderConfig {
            base_url: Some("http://127.0.0.1:9/v1".into()),
            ..kind_cfg(ProviderKind::Groq)
        };
        let p = Provider::compile("p", &c).unwrap();
        assert!(p.unavailable.is_none());
    }

    #[test]
    fn parses_urls() {
        let p = Provider::compile("p", &cfg("https://api.openai.com/v1/")).unwrap();
        let a = p.addr.unwrap();
        assert_eq!((a.scheme, a.port), (Scheme::Https, 443));
        assert_eq!(a.authority, "api.openai.com");
        assert_eq!(a.path_prefix, "/v1");
        let p = Provider::compile("p", &cfg("http://127.0.0.1:9000/v1")).unwrap();
        let a = p.addr.unwrap();
        assert_eq!(a.authority, "127.0.0.1:9000");
        let p = Provider::compile("p", &cfg("http://[::1]:9000")).unwrap();
        assert_eq!(p.addr.unwrap().authority, "[::1]:9000");
        assert!(Provider::compile("p", &cfg("ftp://x")).is_err());
    }

    #[test]
    fn missing_key_env_marks_unavailable() {
        let mut c = cfg("http://127.0.0.1:1/v1");
        c.api_key_env = Some("INFERGATE_TEST_SURELY_UNSET_VAR".into());
        let p = Provider::compile("p", &c).unwrap();
        assert!(p
            .unavailable
            .as_deref()
            .unwrap()
            .contains("INFERGATE_TEST_SURELY_UNSET_VAR"));
        assert_eq!(
            p.credential,
            CredentialRef::KeyEnv("INFERGATE_TEST_SURELY_UNSET_VAR".into())
        );
    }

    #[test]
    fn the_table_holds_a_reference_to_the_key_never_the_key() {
        std::env::set_var("INFERGATE_TEST_KEY_DEBUG", "sk-very-secret");
        let mut c = cfg("http://127.0.0.1:1/v1");
        c.api_key_env = Some("INFERGATE_TEST_KEY_DEBUG".into());
        let p = Provider::compile("p", &c).unwrap();
        assert!(p.unavailable.is_none());
        assert_eq!(p.auth_style(), AuthStyle::Bearer);
        assert!(!format!("{p:?}").contains("sk-very-secret"));
    }
}
