//! The TOML configuration: what an operator writes, read into plain structs.
//!
//! `Config` is only the file's shape, and depends on no other part. The route module
//! validates and compiles it into an immutable `RouteTable`; a config that does not compile
//! is refused with the reason and never replaces the table that serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod cpus;
mod governance;
mod guardrails;
mod kinds;
mod otel;

pub use cpus::{compact as compact_cpu_list, CpuList, CpuListError, MAX_CPU};
pub use governance::{
    BudgetConfig, GovernanceConfig, LimitsConfig, PriceConfig, RunsConfig, StoreConfig,
    TenantConfig,
};
pub use guardrails::{CustomRuleConfig, GuardrailAction, GuardrailConfig, GuardrailSide};
pub use otel::{OtelConfig, OtlpEndpoint};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the config's shape.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// The file parsed but says something that cannot work (unknown provider, no targets...).
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The client-facing listener and its limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// The admin listener (reload, health); off when absent.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The request log (one JSON line per request).
    #[serde(default)]
    pub log: LogConfig,
    /// Gateway keys that clients present; the gateway runs open when there are none.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Upstream providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model aliases that clients ask for, each with its ordered targets.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Sizes of the response caches (which aliases use them is per model).
    #[serde(default)]
    pub cache: CacheConfig,
    /// The embedding model behind the semantic cache.
    #[serde(default)]
    pub embedder: Option<crate::embed::EmbedderConfig>,
    /// Tenants by name: the limits, budget and models their keys share.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Prices by the provider's model name, over the built-in table.
    #[serde(default)]
    pub pricing: BTreeMap<String, PriceConfig>,
    /// How admission plans requests (output floor, image allowance).
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// The embedded store for run-time keys and spend (absent: memory only).
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Named guardrail policies, listed by model aliases and tenants.
    #[serde(default)]
    pub guardrails: BTreeMap<String, GuardrailConfig>,
    /// OpenTelemetry traces over OTLP/HTTP (off without an endpoint; read at start only).
    #[serde(default)]
    pub otel: OtelConfig,
    /// Prometheus metrics on the admin listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// Whether `GET /metrics` is served on the admin listener (read at start only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// On or off; absent: on when there is an admin listener.
    pub enabled: Option<bool>,
}

impl MetricsConfig {
    /// Whether metrics are kept, given whether an admin listener exists to serve them.
    pub fn is_on(&self, admin: bool) -> bool {
        admin && self.enabled.unwrap_or(true)
    }
}

/// Process-wide cache sizes. Caches are created at start and survive reloads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory bound of the exact cache in bytes (responses are evicted beyond it).
    pub exact_max_bytes: u64,
    /// Most entries in one semantic scope (tenant, alias, conversation state).
    pub semantic_max_entries_per_scope: usize,
    /// Most semantic scopes.
    pub semantic_max_scopes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            exact_max_bytes: 256 * 1024 * 1024,
            semantic_max_entries_per_scope: 100_000,
            semantic_max_scopes: 10_000,
        }
    }
}

/// How one alias uses the caches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// Serve identical requests (same tenant, same normalized body) from the exact cache.
    #[serde(default)]
    pub exact: bool,
    /// Serve paraphrases of the last user message from the semantic cache.
    #[serde(default)]
    pub semantic: bool,
    /// How long an answer is served, in seconds.
    #[serde(default = "default_ttl_s")]
    pub ttl_s: u64,
    /// Cosine similarity a semantic candidate needs (it must also pass the guard).
    pub threshold: Option<f32>,
}

fn default_ttl_s() -> u64 {
    3600
}

impl Config {
    /// Reads and parses a config file (no validation beyond the shape: see `RouteTable::compile`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        cfg.otel.endpoint()?;
        Ok(cfg)
    }
}

/// The client-facing HTTP listener and the limits it enforces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address every shard listens on (SO_REUSEPORT).
    pub listen: String,
    /// Number of shards (threads, one runtime each); defaults to the number of CPUs in
    /// `cpus`.
    pub shards: Option<usize>,
    /// The CPUs shard threads are pinned to (`"0-3,6"` or `[0, 1]`), each shard to one of
    /// them in turn; every one must be in the process's allowed set (`taskset`, cgroup
    /// cpuset). Absent: the allowed set. Read at start only.
    pub cpus: Option<CpuList>,
    /// How long a shard may go without its heartbeat (a timer task on its event loop,
    /// every 100 ms) before `/admin/live` and the systemd watchdog call the process dead.
    pub liveness_timeout_ms: u64,
    /// Largest request head (request line + headers) accepted, in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Most headers accepted in one request; more gets 431.
    pub max_headers: usize,
    /// Largest request body accepted, in bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// Time a client has to send a complete request head once it started one.
    pub header_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept open.
    pub keepalive_timeout_ms: u64,
    /// How long shutdown waits for requests in flight before closing them.
    pub drain_timeout_ms: u64,
    /// File to write the process id to once serving (read at start only); `infergate upgrade
    /// --pidfile` and supervisors find the process there. Absent: no pidfile.
    pub pidfile: Option<PathBuf>,
    /// How long an upgrade (SIGUSR2) waits for the new process to serve before it kills it
    /// and keeps serving.
    pub upgrade_timeout_ms: u64,
    /// How long a new connection may take to send its first request head; shorter than the
    /// keep-alive timeout so idle sockets can't hold descriptors.
    pub first_request_timeout_ms: u64,
    /// Most client connections one shard keeps open; one more is answered 503 and closed.
    /// Lowered at start when the open-files limit can't hold every shard's share.
    pub max_connections_per_shard: usize,
    /// Bytes of request bodies all shards may hold at once (read at start only); a body
    /// that does not fit is answered 503 with `retry-after`.
    pub max_inflight_body_bytes: usize,
    /// TLS termination: certificate chain and private key (PEM files). Absent: plain HTTP.
    /// The files are read again when they change; turning TLS on or off needs a restart.
    pub tls: Option<ServerTlsConfig>,
    /// HTTP/2 from clients: with prior knowledge on plain connections (`curl
    /// --http2-prior-knowledge`) and through ALPN `h2` on TLS ones.
    pub http2: bool,
    /// Most streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub http2_max_streams: u32,
}

/// The certificate and key a TLS listener presents.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_string(),
            shards: None,
            cpus: None,
            liveness_timeout_ms: 5_000,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_body_bytes: 16 * 1024 * 1024,
            header_timeout_ms: 10_000,
            keepalive_timeout_ms: 75_000,
            drain_timeout_ms: 15_000,
            pidfile: None,
            upgrade_timeout_ms: 60_000,
            first_request_timeout_ms: 5_000,
            max_connections_per_shard: 16_384,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            tls: None,
            http2: true,
            http2_max_streams: 128,
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bind address; keep it on loopback or a private interface.
    pub listen: String,
    /// Environment variable holding the admin token: every request that changes state needs
    /// `Authorization: Bearer <token>`. Unset (or the variable empty): the admin API is
    /// read-only, and it may only listen on loopback.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Extra `Host` values the admin API answers to (besides its own address, `localhost`
    /// and the loopback addresses at its port), e.g. `"admin.internal:8081"`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// Where request records go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// JSONL file for request records; `""` turns the log off.
    pub path: String,
    /// Size at which the file is rotated to `PATH.1`.
    pub max_bytes: u64,
    /// How many rotated files are kept.
    pub keep: usize,
    /// Records waiting for the writer at most; when full, a record is dropped and counted
    /// (`infergate_records_dropped_total`) rather than making a shard wait.
    pub max_queue: usize,
    /// Also rotate at UTC midnight, to `PATH.YYYY-MM-DD` (the day the file holds).
    pub daily: bool,
    /// Daily files older than this many days are deleted (0 keeps them all).
    pub keep_days: usize,
    /// How many of the newest records are kept in memory for `GET /admin/requests` (and
    /// whether the hourly usage ledger behind `GET /admin/usage` runs); 0 keeps none.
    pub recent: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            path: "infergate-requests.jsonl".to_string(),
            max_bytes: 256 * 1024 * 1024,
            keep: 3,
            max_queue: 65_536,
            daily: false,
            keep_days: 7,
            recent: crate::observe::DEFAULT_RECENT,
        }
    }
}

/// Gateway keys, and what a gateway without keys accepts from browsers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted keys, stored as SHA-256 hashes.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Open mode only: web origins (`https://app.example.com`) whose pages may call the
    /// gateway; `"*"` allows any. Requests with any other `Origin` are refused with 403.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Open mode only: accept POST bodies whatever their content type (default: JSON only,
    /// since a page can send `text/plain` cross-origin without asking).
    #[serde(default)]
    pub any_content_type: bool,
}

/// One gateway key: a name for the record, the SHA-256 (hex) of the secret, and what the
/// key may use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Who holds the key (appears in the request record).
    pub name: String,
    /// Lowercase or uppercase hex SHA-256 of the key the client sends.
    pub sha256: String,
    /// The tenant (a key of `[tenants]`) whose limits, budget and models also apply.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Model aliases the key may call (globs); absent: all (within its tenant's).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The key's own requests and tokens per minute.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The key's own spend cap.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// A region tag for the key's records.
    #[serde(default)]
    pub region: Option<String>,
    /// Free-form labels for the key's records.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Rules for the key's agent runs (over its tenant's).
    #[serde(default)]
    pub runs: Option<RunsConfig>,
}

pub use kinds::{AuthStyle, KindSpec, ProviderKind};

/// One upstream provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which dialect it speaks.
    pub kind: ProviderKind,
    /// Base URL including the API prefix, e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// Environment variable that holds the API key; a provider whose variable is unset is skipped.
    pub api_key_env: Option<String>,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time from sending the request to the response head.
    #[serde(default = "default_first_byte_timeout_ms")]
    pub first_byte_timeout_ms: u64,
    /// Time for the whole call, body or stream included.
    #[serde(default = "default_total_timeout_ms")]
    pub total_timeout_ms: u64,
    /// Longest silence inside a streamed answer (no bytes for this long) before the stream
    /// is ended with an error event; defaults to `first_byte_timeout_ms`.
    #[serde(default)]
    pub stream_idle_timeout_ms: Option<u64>,
    /// Idle connections kept per shard.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_shard: usize,
    /// PEM file of extra CA certificates to trust for this provider (self-hosted models,
    /// private gateways), in addition to the built-in web PKI roots.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Speak HTTP/2 to the provider: over TLS when the server picks `h2` in ALPN (HTTP/1.1
    /// otherwise), over `http://` as h2c with prior knowledge. One multiplexed connection
    /// per shard replaces the keep-alive pool, so fewer sockets carry more calls.
    #[serde(default)]
    pub http2: bool,
    /// HTTP/2 connections per shard to this provider (with `http2`), requests spread over
    /// them in turn: more than one when the provider's stream limit or one socket's
    /// throughput is the bottleneck.
    #[serde(default = "default_h2_connections")]
    pub h2_connections: usize,
    /// AWS region (`bedrock`): picks the endpoint and signs requests. Defaults to the
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` environment variable.
    #[serde(default)]
    pub region: Option<String>,
    /// Azure OpenAI resource name (`azure-openai`): `https://{resource}.openai.azure.com/openai`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Azure OpenAI `api-version` query parameter (`azure-openai`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Cloudflare account id (`cloudflare-workers-ai`), part of the base URL.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Whether the provider serves OpenAI's Responses API itself (`/responses`); when it
    /// does, Responses clients are passed through, otherwise translated to Chat Completions.
    /// Defaults to the kind's (true for `openai` only).
    #[serde(default)]
    pub responses_api: Option<bool>,
    /// Client request headers forwarded to this provider besides its kind's defaults
    /// (exact names, or `prefix*`); credentials, cookies and framing headers never are.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Most attempts in flight at this provider at once, over all shards (absent:
    /// unlimited). An attempt counts from when it is sent until its answer has ended (the
    /// whole body read, or the stream relayed); a request finding the provider full goes
    /// to its next target, and answers 503 when every target is full.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

#[cfg(test)]
impl ProviderConfig {
    /// An OpenAI-kind provider at `url` with 1 ms timeouts and nothing else set, for unit
    /// tests.
    pub fn openai_for_tests(url: &str) -> Self {
        Self {
            kind: ProviderKind::Openai,
            base_url: Some(url.to_string()),
            api_key_env: None,
            connect_timeout_ms: 1,
            first_byte_timeout_ms: 1,
            total_timeout_ms: 1,
            stream_idle_timeout_ms: None,
            max_idle_per_shard: 1,
            tls_ca_file: None,
            http2: false,
            h2_connections: 1,
            region: None,
            resource: None,
            api_version: None,
            account_id: None,
            responses_api: None,
            forward_headers: Vec::new(),
            max_concurrency: None,
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_first_byte_timeout_ms() -> u64 {
    60_000
}
fn default_total_timeout_ms() -> u64 {
    600_000
}
fn default_max_idle() -> usize {
    64
}
fn default_h2_connections() -> usize {
    1
}

/// One model alias.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Where requests for this alias go, in fallback order.
    pub targets: Vec<TargetConfig>,
    /// Response caching for this alias (off when absent).
    #[serde(default)]
    pub cache: Option<ModelCacheConfig>,
    /// Guardrail policies (names of `[guardrails]`) applied to this alias's traffic.
    #[serde(default)]
    pub guardrails: Vec<String>,
    /// A JSON-schema file every answer's output must match (path relative to the working
    /// directory, as `[log] path` is).
    #[serde(default)]
    pub json_schema: Option<String>,
    /// How many times an output that fails its schema is retried on the same target before
    /// the next target is tried.
    #[serde(default, alias = "schema_retries")]
    pub json_schema_retries: u32,
    /// Whether a schema the client asks for (`response_format`, `text.format`,
    /// `output_config.format`) is enforced too, not only the alias's own.
    #[serde(default = "default_true")]
    pub enforce_requested_schema: bool,
    /// Streamed calls with a schema: ask the provider for a whole answer, check it (and
    /// retry) before the client sees a byte, then send it as a stream.
    #[serde(default)]
    pub buffer_stream: bool,
    /// Record the request and the answer in the request log (redacted by the session's
    /// guardrail rules, bounded in size).
    #[serde(default)]
    pub log_bodies: bool,
    /// How the first target of a request is chosen (default: `weighted` when a target has
    /// a weight, else `ordered`).
    #[serde(default)]
    pub strategy: Option<RouteStrategy>,
    /// When a target that keeps failing is taken out of rotation (default: after 5
    /// failures in a row, for 30 s, doubling while its probes fail).
    #[serde(default)]
    pub eject: EjectConfig,
    /// How many attempts a request may make, the backoff before a target is asked again,
    /// and the retry budget.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Body fields (dotted paths such as `user` or `metadata.user_id`) whose value keys
    /// session affinity when a request has no `x-infergate-session-id`.
    #[serde(default)]
    pub affinity_fields: Vec<String>,
    /// Conditional target lists: the first rule whose conditions all hold gives the
    /// request's targets instead of `targets`.
    #[serde(default)]
    pub rules: Vec<RouteRuleConfig>,
}

/// `[[models.X.rules]]`: a target list for the requests that match `when`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRuleConfig {
    /// What a request must have (every condition given must hold).
    pub when: RouteConditions,
    /// Its targets, in the alias's strategy.
    pub targets: Vec<TargetConfig>,
}

/// The conditions of a routing rule; those not given always hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConditions {
    /// A request header that must be present (with `value`, equal to it, ignoring case).
    #[serde(default)]
    pub header: Option<String>,
    /// The value `header` must have.
    #[serde(default)]
    pub value: Option<String>,
    /// The key's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The key's `tier` metadata label.
    #[serde(default)]
    pub tier: Option<String>,
    /// The key's (or tenant's) region tag.
    #[serde(default)]
    pub region: Option<String>,
    /// Whether the request offers tools.
    #[serde(default)]
    pub tools: Option<bool>,
    /// Whether the request holds images.
    #[serde(default)]
    pub images: Option<bool>,
    /// The prompt's estimated size is at least this many tokens (about 4 bytes a token).
    #[serde(default)]
    pub min_prompt_tokens: Option<u64>,
    /// The prompt's estimated size is at most this many tokens.
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
}

/// `[models.X] retries`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts after the first (default: one per other target); more than the other
    /// targets asks targets again.
    #[serde(default)]
    pub max: Option<u32>,
    /// Backoff base in milliseconds before a target is asked again (full jitter, doubling).
    #[serde(default = "default_retry_base_ms")]
    pub base_ms: u64,
    /// Retries allowed per alias and shard, in percent of its requests over the last 10 s
    /// (plus 10 whatever the traffic). The default, 100, lets every request fail over once
    /// on average and keeps a full outage from more than doubling the calls to providers.
    #[serde(default = "default_retry_budget_percent")]
    pub budget_percent: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max: None,
            base_ms: default_retry_base_ms(),
            budget_percent: default_retry_budget_percent(),
        }
    }
}

fn default_retry_base_ms() -> u64 {
    100
}
fn default_retry_budget_percent() -> u32 {
    100
}

fn default_true() -> bool {
    true
}

/// How an alias picks the first target of each request; the others follow as fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteStrategy {
    /// The listed order.
    Ordered,
    /// Drawn by the targets' weights (unweighted targets count 1), the rest in order.
    Weighted,
    /// The lower expected wait of two healthy targets drawn at random (power of two
    /// choices over a peak-EWMA of time to first byte times the attempts in flight); the
    /// rest by the same measure.
    Latency,
    /// The cheapest target by the pricing table (input plus output price; unpriced ones
    /// last), the others as fallbacks in price order.
    Cost,
}

/// `[models.X] eject`: passive health.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EjectConfig {
    /// Failures in a row (connect errors, timeouts, resets, 5xx) that eject a target; 0
    /// turns ejection off.
    #[serde(default = "default_eject_failures")]
    pub consecutive_failures: u32,
    /// How long an ejection lasts before one request probes the target.
    #[serde(default = "default_eject_cooldown_ms")]
    pub cooldown_ms: u64,
}

impl Default for EjectConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: default_eject_failures(),
            cooldown_ms: default_eject_cooldown_ms(),
        }
    }
}

fn default_eject_failures() -> u32 {
    5
}
fn default_eject_cooldown_ms() -> u64 {
    30_000
}

/// One target of a model alias.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A key of `[providers]`.
    pub provider: String,
    /// The model name the provider knows.
    pub model: String,
    /// Share of first attempts; when any target of an alias has a weight, the first attempt is
    /// drawn by weight (unweighted targets count 1, weight 0 is fallback only).
    pub weight: Option<u32>,
    /// The model's context window in tokens; a request estimated larger skips the target.
    #[serde(default)]
    pub context_tokens: Option<u64>,
    /// `false`: the model cannot call tools (requests with `tools` skip it).
    #[serde(default)]
    pub tools: Option<bool>,
    /// `false`: the model cannot read images (requests with image inputs skip it).
    #[serde(default)]
    pub vision: Option<bool>,
    /// `false`: the model cannot be held to a JSON schema (structured-output requests skip
    /// it).
    #[serde(default)]
    pub json_schema: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let cfg = Config::parse(
            r#"
[server]
listen = "127.0.0.1:8080"
[admin]
listen = "127.0.0.1:8081"
[log]
path = "infergate-requests.jsonl"
[providers.primary]
kind = "openai"
base_url = "http://127.0.0.1:9000/v1"
[providers.backup]
kind = "openai"
base_url = "http://127.0.0.1:9001/v1"
[models."gpt-4o-mini"]
targets = [
  { provider = "primary", model = "gpt-4o-mini-2024-07-18" },
  { provider = "backup", model = "gpt-4o-mini" },
]
"#,
        )
        .unwrap();
        assert_eq!(cfg.models["gpt-4o-mini"].targets.len(), 2);
        assert_eq!(cfg.providers["primary"].kind, ProviderKind::Openai);
        assert_eq!(cfg.admin.unwrap().listen, "127.0.0.1:8081");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::parse("[server]\nlisten = \"x\"\nshardz = 2\n").unwrap_err();
        assert!(err.to_string().contains("shardz"), "{err}");
    }
}
