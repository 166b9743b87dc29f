//! The compiled routing table and its lock-free holder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::provider::Provider;
use crate::config::{Config, ConfigError, ServerConfig};
use crate::guardrails::schema::{OutputSchema, SchemaOrigin};
use crate::guardrails::{GuardrailPolicies, GuardrailPolicy};
use crate::policy::{BrowserPolicy, GatewayKeys, Governance};

/// One place a model alias can be served from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The provider to call.
    pub provider: Arc<Provider>,
    /// The model name sent upstream.
    pub model: Arc<str>,
    /// Share of first attempts (see [`crate::config::TargetConfig::weight`]).
    pub weight: u32,
}

/// How an alias is served: its targets and whether the first is drawn by weight.
#[derive(Debug)]
pub struct ModelRoute {
    /// The alias clients ask for.
    pub alias: Arc<str>,
    /// Targets in fallback order.
    pub targets: Vec<Target>,
    /// True when any target declared a weight.
    pub weighted: bool,
    total_weight: u32,
    /// How this alias uses the caches (None: not at all).
    pub cache: Option<RouteCache>,
    /// The alias's guardrail policies.
    pub guardrails: Vec<Arc<GuardrailPolicy>>,
    /// What the alias's answers' output must look like.
    pub output: OutputRules,
    /// Requests and answers are recorded in the request log.
    pub log_bodies: bool,
}

/// An alias's structured-output rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct OutputRules {
    /// The alias's own schema (`json_schema`).
    pub schema: Option<OutputSchema>,
    /// Retries on the same target for an output that fails its schema.
    pub retries: u32,
    /// Schemas clients ask for are enforced too.
    pub enforce_requested: bool,
    /// Streamed calls with a schema are checked whole before they are sent.
    pub buffer_stream: bool,
}

/// Most retries of an invalid output per target (each is a paid call).
const MAX_SCHEMA_RETRIES: u32 = 5;

impl OutputRules {
    fn compile(alias: &str, mc: &crate::config::ModelConfig) -> Result<Self, ConfigError> {
        if mc.json_schema_retries > MAX_SCHEMA_RETRIES {
            return Err(ConfigError::Invalid(format!(
                "model {alias:?}: json_schema_retries is at most {MAX_SCHEMA_RETRIES}"
            )));
        }
        let schema = match &mc.json_schema {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::Invalid(format!("model {alias:?}: json_schema {path:?}: {e}"))
                })?;
                let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "model {alias:?}: json_schema {path:?} is not JSON: {e}"
                    ))
                })?;
                let compiled = OutputSchema::compile(&value, SchemaOrigin::Route)
                    .map_err(|e| ConfigError::Invalid(format!("model {alias:?}: {path:?}: {e}")))?;
                Some(compiled)
            }
        };
        Ok(Self {
            schema,
            retries: mc.json_schema_retries,
            enforce_requested: mc.enforce_requested_schema,
            buffer_stream: mc.buffer_stream,
        })
    }
}

/// An alias's cache policy, compiled.
#[derive(Debug, Clone, Copy)]
pub struct RouteCache {
    /// Exact cache on.
    pub exact: bool,
    /// Semantic cache on.
    pub semantic: bool,
    /// Default time to live of a stored answer.
    pub ttl: std::time::Duration,
    /// Similarity a semantic candidate needs.
    pub threshold: f32,
}

/// The order in which one request tries its targets (indexes into `ModelRoute::targets`).
#[derive(Debug, Clone)]
pub struct AttemptPlan {
    order: [u8; 16],
    len: u8,
}

impl AttemptPlan {
    /// The targets' indexes in attempt order.
    pub fn indexes(&self) -> &[u8] {
        // `plan` never sets `len` past the array.
        self.order
            .get(..usize::from(self.len))
            .unwrap_or(&self.order)
    }
}

/// Most targets one alias may list (the attempt plan lives on the stack).
pub const MAX_TARGETS: usize = 16;

impl ModelRoute {
    /// Picks the attempt order for one request: listed order, or for a weighted alias the first
    /// attempt drawn by weight and the rest in listed order. `roll` is a uniform random u32.
    pub fn plan(&self, roll: u32) -> AttemptPlan {
        let mut plan = AttemptPlan {
            order: [0; 16],
            len: 0,
        };
        let first = if self.weighted && self.total_weight > 0 {
            let mut point = roll % self.total_weight;
            let mut chosen = 0;
            for (i, t) in self.targets.iter().enumerate() {
                if point < t.weight {
                    chosen = i;
                    break;
                }
                point -= t.weight;
            }
            chosen
        } else {
            0
        };
        // The first pick, then the others in listed order (at most MAX_TARGETS: config
        // validation refuses more).
        let rest = (0..self.targets.len()).filter(|&i| i != first);
        for (slot, i) in plan
            .order
            .iter_mut()
            .zip(std::iter::once(first).chain(rest))
        {
            *slot = i as u8;
            plan.len += 1;
        }
        plan
    }
}

/// Everything the data plane needs to serve a request, compiled once and never mutated.
#[derive(Debug)]
pub struct RouteTable {
    /// Increases with every successful (re)load; shows in `/admin/health`.
    pub version: u64,
    /// Model aliases.
    pub models: HashMap<Arc<str>, Arc<ModelRoute>>,
    /// Providers by name.
    pub providers: HashMap<String, Arc<Provider>>,
    /// Accepted gateway keys.
    pub keys: GatewayKeys,
    /// What open mode accepts from web pages.
    pub browser: BrowserPolicy,
    /// Tenants, keys' rules and prices (the counters live in the process-wide governor).
    pub governance: Governance,
    /// Every `[guardrails]` policy, by name (aliases hold theirs; tenants name theirs).
    pub guardrails: GuardrailPolicies,
    /// Listener limits (the listen address and shard count only apply at start).
    pub server: ServerConfig,
    /// `GET /v1/models` body, rendered once.
    pub models_json: bytes::Bytes,
}

static TABLE_VERSION: AtomicU64 = AtomicU64::new(0);

impl RouteTable {
    /// Validates a config and compiles it. Fails with the first reason it can't be served.
    pub fn compile(cfg: &Config) -> Result<Self, ConfigError> {
        let mut providers = HashMap::new();
        for (name, pc) in &cfg.providers {
            providers.insert(name.clone(), Arc::new(Provider::compile(name, pc)?));
        }
        let guardrails = GuardrailPolicies::compile(&cfg.guardrails)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (name, t) in &cfg.tenants {
            guardrails.resolve(&t.guardrails).map_err(|unknown| {
                ConfigError::Invalid(format!(
                    "tenant {name:?}: guardrail {unknown:?} is not defined in [guardrails]"
                ))
            })?;
        }
        let mut models = HashMap::new();
        for (alias, mc) in &cfg.models {
            if mc.targets.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "model {alias:?} has no targets"
                )));
            }
            if mc.targets.len() > MAX_TARGETS {
                return Err(ConfigError::Invalid(format!(
                    "model {alias:?} has {} targets; at most {MAX_TARGETS}",
                    mc.targets.len()
                )));
            }
            let weighted = mc.targets.iter().any(|t| t.weight.is_some());
            let mut targets = Vec::with_capacity(mc.targets.len());
            for t in &mc.targets {
                let provider = providers.get(&t.provider).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "model {alias:?}: unknown provider {:?}",
                        t.provider
                    ))
                })?;
                if t.model.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "model {alias:?}: a target has an empty model name"
                    )));
                }
                targets.push(Target {
                    provider: Arc::clone(provider),
                    model: Arc::from(t.model.as_str()),
                    weight: t.weight.unwrap_or(1),
                });
            }
            let total_weight = targets.iter().map(|t| t.weight).sum();
            let cache = match &mc.cache {
                Some(c) if c.exact || c.semantic => {
                    let threshold = c.threshold.unwrap_or(crate::cache::DEFAULT_THRESHOLD);
                    if !(0.0..=1.0).contains(&threshold) {
                        return Err(ConfigError::Invalid(format!(
                            "model {alias:?}: cache.threshold must be between 0 and 1"
                        )));
                    }
                    Some(RouteCache {
                        exact: c.exact,
                        semantic: c.semantic,
                        ttl: std::time::Duration::from_secs(c.ttl_s.max(1)),
                        threshold,
                    })
                }
                _ => None,
            };
            let route_guardrails = guardrails.resolve(&mc.guardrails).map_err(|unknown| {
                ConfigError::Invalid(format!(
                    "model {alias:?}: guardrail {unknown:?} is not defined in [guardrails]"
                ))
            })?;
            let output = OutputRules::compile(alias, mc)?;
            let alias: Arc<str> = Arc::from(alias.as_str());
            models.insert(
                Arc::clone(&alias),
                Arc::new(ModelRoute {
                    alias,
                    targets,
                    weighted,
                    total_weight,
                    cache,
                    guardrails: route_guardrails,
                    output,
                    log_bodies: mc.log_bodies,
                }),
            );
        }
        let keys = GatewayKeys::compile(&cfg.auth)?;
        let models_json = render_models(&cfg.models.keys().cloned().collect::<Vec<_>>());
        Ok(Self {
            version: TABLE_VERSION.fetch_add(1, Ordering::Relaxed) + 1,
            models,
            providers,
            keys,
            browser: BrowserPolicy::compile(&cfg.auth),
            governance: Governance::compile(cfg)?,
            guardrails,
            server: cfg.server.clone(),
            models_json,
        })
    }

    /// Looks up a model alias.
    pub fn model(&self, alias: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(alias)
    }
}

fn render_models(aliases: &[String]) -> bytes::Bytes {
    let data: Vec<serde_json::Value> = aliases
        .iter()
        .map(|a| {
            serde_json::json!({"id": a, "object": "model", "created": 0, "owned_by": "infergate"})
        })
        .collect();
    let v = serde_json::json!({"object": "list", "data": data});
    bytes::Bytes::from(v.to_string())
}

/// The table every shard reads: one atomic pointer load per request, swapped whole on reload.
pub type SharedRouteTable = Arc<ArcSwap<RouteTable>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn table(src: &str) -> RouteTable {
        RouteTable::compile(&Config::parse(src).unwrap()).unwrap()
    }

    const TWO: &str = r#"
[providers.a]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[providers.b]
kind = "mock"
[models.m]
targets = [{ provider = "a", model = "x" }, { provider = "b", model = "y" }]
"#;

    #[test]
    fn ordered_plan_follows_the_list() {
        let t = table(TWO);
        let r = t.model("m").unwrap();
        for roll in [0, 1, 77, u32::MAX] {
            assert_eq!(r.plan(roll).indexes(), &[0, 1]);
        }
    }

    #[test]
    fn weighted_plan_draws_first_by_weight() {
        let t = table(
            r#"
[providers.a]
kind = "mock"
[models.m]
targets = [{ provider = "a", model = "x", weight = 3 }, { provider = "a", model = "y", weight = 1 }, { provider = "a", model = "z", weight = 0 }]
"#,
        );
        let r = t.model("m").unwrap();
        let mut firsts = [0usize; 3];
        for roll in 0..4000u32 {
            let p = r.plan(roll);
            assert_eq!(p.indexes().len(), 3);
            firsts[p.indexes()[0] as usize] += 1;
        }
        assert_eq!(firsts, [3000, 1000, 0]);
    }

    #[test]
    fn invalid_configs_are_refused_with_a_reason() {
        let bad = Config::parse("[models.m]\ntargets = [{ provider = \"nope\", model = \"x\" }]\n")
            .unwrap();
        let err = RouteTable::compile(&bad).unwrap_err().to_string();
        assert!(err.contains("unknown provider"), "{err}");
        let bad = Config::parse("[models.m]\ntargets = []\n").unwrap();
        assert!(RouteTable::compile(&bad).is_err());
    }

    #[test]
    fn models_json_lists_aliases() {
        let t = table(TWO);
        let v: serde_json::Value = serde_json::from_slice(&t.models_json).unwrap();
        assert_eq!(v["data"][0]["id"], "m");
        assert_eq!(v["object"], "list");
    }
}
