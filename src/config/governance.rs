//! The governance part of the config file: tenants, what a key or tenant may use (models,
//! limits, budgets), prices, and the embedded store for run-time state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A tenant: a team or customer whose keys share its limits and budget.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Model aliases the tenant's keys may call (globs such as `claude-*`); absent: all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Requests and tokens per minute over all of the tenant's keys.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The tenant's spend cap.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// A region tag, written into each record (a key's own tag wins).
    #[serde(default)]
    pub region: Option<String>,
    /// Free-form labels written into each record (a key's own labels win).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Rules for the agent runs of the tenant's keys.
    #[serde(default)]
    pub runs: Option<RunsConfig>,
    /// Guardrail policies (names of `[guardrails]`) applied to all of the tenant's traffic.
    #[serde(default)]
    pub guardrails: Vec<String>,
}

/// Requests and tokens per minute; absent means unlimited.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens (prompt plus output) per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
}

/// A spend cap in US dollars over a calendar window in UTC.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// The cap in US dollars.
    pub usd: f64,
    /// `minute`, `hour`, `day`, `month` or `total` (never resets).
    pub per: String,
}

/// A model's price in US dollars per million tokens, by the provider's model name.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Prompt tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Prompt tokens read from the provider's prompt cache (defaults to `input`).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// The model's own most output tokens: what a request that sets no max output tokens
    /// reserves against token limits and budgets.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

/// How admission plans a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// A budget that can pay for fewer output tokens than this refuses the request instead
    /// of lowering its max output tokens further.
    pub min_output_tokens: u64,
    /// Tokens counted for each image in a prompt when bounding its size from above.
    pub image_tokens: u64,
    /// Body fields a run id is also read from when the `x-infergate-run-id` header is
    /// absent: `"metadata.run_id"` and/or `"user"`.
    pub run_id_fields: Vec<String>,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            min_output_tokens: 16,
            image_tokens: 8_000,
            run_id_fields: Vec::new(),
        }
    }
}

/// The embedded store for run-time keys and spend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite file; `""` keeps everything in memory (lost on restart).
    pub path: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "infergate.db".to_string(),
        }
    }
}

/// Rules for agent runs (requests that carry the same run id), on a tenant or a key (a
/// key's own fields win over its tenant's).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunsConfig {
    /// Most calls in one run.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Most spend of one run, in US dollars (reserved like any budget: never overshot).
    #[serde(default)]
    pub max_usd: Option<f64>,
    /// Longest a run may go on, from its first call, in seconds.
    #[serde(default)]
    pub max_wall_s: Option<u64>,
    /// Most calls of one run in flight at once.
    #[serde(default)]
    pub max_concurrency: Option<u64>,
    /// Stop a run whose calls repeat the same tool call (name and arguments), or the same
    /// request, this many times in a row.
    #[serde(default)]
    pub loop_repeat: Option<u32>,
}
