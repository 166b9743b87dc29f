//! The compiled routing table and its lock-free holder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::health::{Availability, EjectPolicy, RouteHealth};
use super::load::RouteState;
use super::provider::Provider;
use super::retry::RetryPolicy;
use crate::config::{Config, ConfigError, RouteStrategy, ServerConfig};
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
    /// `model` as a JSON string, quotes included, rendered once for splicing into the
    /// bodies passed through to the provider.
    pub model_json: bytes::Bytes,
    /// Share of first attempts (see [`crate::config::TargetConfig::weight`]).
    pub weight: u32,
    /// What the model can do, as configured (unset: assumed able).
    pub can: Capabilities,
    /// Its price per million input plus output tokens, in micro-dollars (the `cost`
    /// strategy's order); `None` when the pricing table does not know the model.
    pub price: Option<u64>,
}

/// What a target's model can do, from the target's config; what is not said is assumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Context window in tokens.
    pub context_tokens: Option<u64>,
    /// Cannot call tools.
    pub no_tools: bool,
    /// Cannot read images.
    pub no_vision: bool,
    /// Cannot be held to a JSON schema.
    pub no_json_schema: bool,
}

impl Capabilities {
    /// Whether a request with `needs` can be served.
    pub fn meet(&self, needs: &Needs) -> bool {
        !(needs.tools && self.no_tools
            || needs.vision && self.no_vision
            || needs.json_schema && self.no_json_schema
            || self.context_tokens.is_some_and(|c| needs.tokens > c))
    }

    /// Whether anything is restricted (else no request needs to be looked at).
    pub fn restricted(&self) -> bool {
        *self != Capabilities::default()
    }
}

/// A conditional target list.
#[derive(Debug)]
pub struct RouteRule {
    /// What a request must have.
    pub when: crate::config::RouteConditions,
    /// Its targets.
    pub targets: Vec<Target>,
}

/// What a rule's conditions are checked against.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The request's headers.
    pub headers: &'a crate::http::HeaderList,
    /// The key's tenant.
    pub tenant: Option<&'a str>,
    /// The key's `tier` label.
    pub tier: Option<&'a str>,
    /// The key's or tenant's region.
    pub region: Option<&'a str>,
    /// What the request needs (tools, images, its size).
    pub needs: &'a Needs,
    /// The prompt's estimated size in tokens.
    pub prompt_tokens: u64,
}

impl RouteRule {
    /// Whether every condition given holds for `facts`.
    pub fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        let w = &self.when;
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_ref()
                .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        let header_ok = w.header.as_ref().is_none_or(|name| {
            facts.headers.get(name).is_some_and(|v| {
                w.value.as_ref().is_none_or(|want| {
                    std::str::from_utf8(v.trim_ascii()).is_ok_and(|v| v.eq_ignore_ascii_case(want))
                })
            })
        });
        header_ok
            && eq(&w.tenant, facts.tenant)
            && eq(&w.tier, facts.tier)
            && eq(&w.region, facts.region)
            && w.tools.is_none_or(|t| t == facts.needs.tools)
            && w.images.is_none_or(|i| i == facts.needs.vision)
            && w.min_prompt_tokens.is_none_or(|m| facts.prompt_tokens >= m)
            && w.max_prompt_tokens.is_none_or(|m| facts.prompt_tokens <= m)
    }
}

/// What a request needs of a target's model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// It offers tools.
    pub tools: bool,
    /// It holds images.
    pub vision: bool,
    /// It asks for (or its alias enforces) a JSON schema.
    pub json_schema: bool,
    /// Its estimated prompt plus maximum output, in tokens.
    pub tokens: u64,
}

/// How an alias is served: its targets and whether the first is drawn by weight.
#[derive(Debug)]
pub struct ModelRoute {
    /// The alias clients ask for.
    pub alias: Arc<str>,
    /// Targets in fallback order.
    pub targets: Vec<Target>,
    /// How the first target is chosen.
    pub strategy: RouteStrategy,
    /// When a failing target is taken out of rotation.
    pub eject: EjectPolicy,
    /// How many attempts a request may make, and the backoff and budget of retries.
    pub retries: RetryPolicy,
    /// Some target has a region: requests of keys and tenants with a region reach only
    /// targets in it.
    pub regional: bool,
    /// Some target's capabilities are restricted: requests' needs are checked.
    pub restricted: bool,
    /// Conditional target lists, tried in order before `targets`.
    pub rules: Vec<RouteRule>,
    /// Body fields that key session affinity (after `x-infergate-session-id`).
    pub affinity_fields: Vec<String>,
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
    /// Bit `i`: target `i` was put last because its provider was full.
    full: u16,
    /// Why the session's own target is not first (`ejected`, `rate_limited`,
    /// `concurrency_limited`).
    pub affinity_moved: Option<&'static str>,
}

impl AttemptPlan {
    /// The targets' indexes in attempt order.
    pub fn indexes(&self) -> &[u8] {
        // `plan` never sets `len` past the array.
        self.order
            .get(..usize::from(self.len))
            .unwrap_or(&self.order)
    }

    /// Whether target `index` was put last because its provider was at its
    /// `max_concurrency` when the plan was made.
    pub fn was_full(&self, index: u8) -> bool {
        index < 16 && self.full & (1 << index) != 0
    }
}

/// Most targets one alias may list (the attempt plan lives on the stack).
pub const MAX_TARGETS: usize = 16;

impl ModelRoute {
    /// Picks the attempt order for one request. Only targets in the request's region (when
    /// its key or tenant has one and some target of the alias has a region) are in the plan. The targets this shard's `health` says
    /// are available now come first: the first of them by the alias's strategy (listed
    /// order, drawn by weight, or the lower expected wait of two drawn at random), then the
    /// others in listed order (by expected wait for `latency`); with a session, the
    /// session's own target goes first (see [`PlanInput::session`]). Ejected and benched
    /// targets, and those whose provider is at its `max_concurrency`, come last, in listed
    /// order: tried only when everything else failed.
    pub fn plan(&self, input: &PlanInput<'_>, health: &RouteHealth, now: Instant) -> AttemptPlan {
        let roll = input.roll;
        let targets = self.targets_of(input.rule);
        let mut plan = AttemptPlan {
            order: [0; MAX_TARGETS],
            len: 0,
            full: 0,
            affinity_moved: None,
        };
        let push = |plan: &mut AttemptPlan, i: usize| {
            if let Some(slot) = plan.order.get_mut(usize::from(plan.len)) {
                *slot = i as u8;
                plan.len += 1;
            }
        };
        // Config validation keeps targets at or under MAX_TARGETS.
        let mut allowed = [false; MAX_TARGETS];
        let mut ready = [false; MAX_TARGETS];
        let mut state = [Availability::Ready; MAX_TARGETS];
        let mut available = 0;
        // Regions pin only aliases whose targets say where they are.
        let region = input.region.filter(|_| self.regional);
        for (i, t) in targets.iter().enumerate().take(MAX_TARGETS) {
            let in_region = region.is_none_or(|r| t.in_region(r)) && t.can.meet(&input.needs);
            let mut a = health.availability(&t.provider.name, &t.model, now);
            if in_region && a.is_available() && t.provider.is_full() {
                a = Availability::Full;
                plan.full |= 1 << i;
            }
            if let (Some(al), Some(r), Some(st)) =
                (allowed.get_mut(i), ready.get_mut(i), state.get_mut(i))
            {
                *al = in_region;
                *r = in_region && a.is_available();
                *st = a;
                available += usize::from(*r);
            }
        }
        let is_ready = |i: usize| ready.get(i).copied().unwrap_or(false);
        let candidates = || (0..targets.len()).filter(|&i| is_ready(i));
        let score = |i: usize| {
            targets.get(i).map_or(f64::MAX, |t| {
                health.load_score(&t.provider.name, &t.model, now)
            })
        };
        match self.strategy {
            RouteStrategy::Ordered => candidates().for_each(|i| push(&mut plan, i)),
            RouteStrategy::Weighted => {
                let weight = |i: usize| targets.get(i).map_or(0, |t| t.weight);
                let total: u32 = candidates().map(weight).sum();
                let first = if total > 0 {
                    let mut point = roll % total;
                    candidates().find(|&i| {
                        let w = weight(i);
                        if point < w {
                            return true;
                        }
                        point -= w;
                        false
                    })
                } else {
                    candidates().next()
                };
                if let Some(first) = first {
                    push(&mut plan, first);
                }
                candidates()
                    .filter(|&i| Some(i) != first)
                    .for_each(|i| push(&mut plan, i));
            }
            RouteStrategy::Latency => {
                let mut order = [0usize; MAX_TARGETS];
                for (slot, i) in order.iter_mut().zip(candidates()) {
                    *slot = i;
                }
                let order = order.get_mut(..available).unwrap_or_default();
                // Power of two choices: the first is the better of two drawn at random; the
                // rest by expected wait.
                if available >= 2 {
                    let n = available as u32;
                    let a = (roll & 0xffff) % n;
                    let b = (a + 1 + (roll >> 16) % (n - 1)) % n;
                    let (a, b) = (a as usize, b as usize);
                    let pick = match (order.get(a), order.get(b)) {
                        (Some(&x), Some(&y)) if score(y) < score(x) => b,
                        _ => a,
                    };
                    order.swap(0, pick);
                    if let Some(rest) = order.get_mut(1..) {
                        rest.sort_by(|&x, &y| score(x).total_cmp(&score(y)));
                    }
                }
                order.iter().for_each(|&i| push(&mut plan, i));
            }
            RouteStrategy::Cost => {
                let mut order = [0usize; MAX_TARGETS];
                for (slot, i) in order.iter_mut().zip(candidates()) {
                    *slot = i;
                }
                let order = order.get_mut(..available).unwrap_or_default();
                let price = |i: usize| targets.get(i).and_then(|t| t.price);
                // Stable: equal prices keep the listed order; unpriced targets go last.
                order.sort_by_key(|&i| (price(i).is_none(), price(i)));
                order.iter().for_each(|&i| push(&mut plan, i));
            }
        }
        if let Some(session) = input.session {
            stick(targets, &mut plan, session, &allowed, &state, available);
        }
        let is_allowed = |i: usize| allowed.get(i).copied().unwrap_or(false);
        (0..targets.len())
            .filter(|&i| is_allowed(i) && !is_ready(i))
            .for_each(|i| push(&mut plan, i));
        plan
    }

    /// The target list of rule `rule` (`None`: the alias's own `targets`).
    pub fn targets_of(&self, rule: Option<usize>) -> &[Target] {
        rule.and_then(|i| self.rules.get(i))
            .map_or(self.targets.as_slice(), |r| r.targets.as_slice())
    }

    /// Every target the alias may call, its own and its rules'.
    pub fn all_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets
            .iter()
            .chain(self.rules.iter().flat_map(|r| r.targets.iter()))
    }
}

/// Session affinity: the available targets in the order of their rendezvous hash with
/// the session (the same on every shard and for every call), so the session's target
/// goes first while it is available, and a failover or a move goes to the same next
/// one each time. When the session's own target (the highest hash of the allowed ones)
/// is not available, the plan says why the session moved.
fn stick(
    targets: &[Target],
    plan: &mut AttemptPlan,
    session: u64,
    allowed: &[bool; MAX_TARGETS],
    state: &[Availability; MAX_TARGETS],
    available: usize,
) {
    let weight = |i: usize| targets.get(i).map_or(0, |t| rendezvous(session, t));
    let home = (0..targets.len())
        .filter(|&i| allowed.get(i).copied().unwrap_or(false))
        .max_by_key(|&i| weight(i));
    let ready = plan.order.get_mut(..available).unwrap_or_default();
    ready.sort_by_key(|&i| std::cmp::Reverse(weight(usize::from(i))));
    if let (Some(home), Some(&first)) = (home, ready.first()) {
        if usize::from(first) != home {
            plan.affinity_moved = state.get(home).and_then(|a| a.reason());
        }
    }
}

/// What the plan of one request depends on besides the alias and health.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanInput<'a> {
    /// A uniform random number (weighted draws, power of two choices).
    pub roll: u32,
    /// The region of the request's key or tenant: only targets in it may serve.
    pub region: Option<&'a str>,
    /// A hash of the request's session (`x-infergate-session-id`, else its run id): calls
    /// of one session go to the same target while it is healthy, so provider-side prompt
    /// caches keep hitting.
    pub session: Option<u64>,
    /// What the request needs of a target (only targets able to are in the plan).
    pub needs: Needs,
    /// The rule whose targets serve the request (`None`: the alias's own).
    pub rule: Option<usize>,
}

impl Target {
    /// Whether the target serves from `region`: its provider's `region` is `region` or
    /// starts with `region-` (`eu` holds `eu-west-1`).
    pub fn in_region(&self, region: &str) -> bool {
        self.provider.region_tag.as_deref().is_some_and(|r| {
            r.eq_ignore_ascii_case(region)
                || r.get(..region.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(region))
                    && r.as_bytes().get(region.len()) == Some(&b'-')
        })
    }
}

/// The rendezvous (highest random weight) hash of a session and a target.
fn rendezvous(session: u64, t: &Target) -> u64 {
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, t.provider.name.as_bytes());
    h = fnv1a(h ^ 0xff, t.model.as_bytes());
    mix(h ^ session)
}

/// FNV-1a over `bytes`, from `h`.
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A 64-bit finalizer (splitmix64), so near hashes spread.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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
    /// What outlives the table: providers' attempts in flight and the targets' health
    /// board, shared with the tables compiled before and after it.
    pub state: Arc<RouteState>,
}

static TABLE_VERSION: AtomicU64 = AtomicU64::new(0);

impl RouteTable {
    /// Validates a config and compiles it with a state of its own (nothing in flight, no
    /// health known). Fails with the first reason it can't be served.
    pub fn compile(cfg: &Config) -> Result<Self, ConfigError> {
        Self::compile_in(cfg, RouteState::new())
    }

    /// Validates a config and compiles it on `state`, the one the tables served before it
    /// were compiled on (so attempts in flight and health carry over the swap).
    pub fn compile_in(cfg: &Config, state: Arc<RouteState>) -> Result<Self, ConfigError> {
        state.prune();
        let mut providers = HashMap::new();
        for (name, pc) in &cfg.providers {
            let mut provider = Provider::compile(name, pc)?;
            provider.load = state.load_for(name);
            providers.insert(name.clone(), Arc::new(provider));
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
        let governance = Governance::compile(cfg)?;
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
            let strategy = match mc.strategy {
                Some(s) => s,
                None if weighted => RouteStrategy::Weighted,
                None => RouteStrategy::Ordered,
            };
            if weighted && strategy != RouteStrategy::Weighted {
                return Err(ConfigError::Invalid(format!(
                    "model {alias:?}: target weights need strategy = \"weighted\""
                )));
            }
            let eject = EjectPolicy {
                consecutive_failures: mc.eject.consecutive_failures,
                cooldown: Duration::from_millis(mc.eject.cooldown_ms.max(1)),
            };
            if mc.retries.budget_percent > 100 || mc.retries.max.is_some_and(|m| m > 32) {
                return Err(ConfigError::Invalid(format!(
                    "model {alias:?}: retries.budget_percent is at most 100 and retries.max at most 32"
                )));
            }
            let retries = RetryPolicy {
                max: mc.retries.max,
                base: Duration::from_millis(mc.retries.base_ms),
                budget_percent: mc.retries.budget_percent,
            };
            let targets = compile_targets(alias, &mc.targets, &providers, &governance)?;
            let mut rules = Vec::with_capacity(mc.rules.len());
            for (i, rule) in mc.rules.iter().enumerate() {
                if rule.targets.is_empty() || rule.targets.len() > MAX_TARGETS {
                    return Err(ConfigError::Invalid(format!(
                        "model {alias:?}: rule {} needs 1 to {MAX_TARGETS} targets",
                        i + 1
                    )));
                }
                let targets = compile_targets(alias, &rule.targets, &providers, &governance)?;
                rules.push(RouteRule {
                    when: rule.when.clone(),
                    targets,
                });
            }
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
            let every = || targets.iter().chain(rules.iter().flat_map(|r| &r.targets));
            let regional = every().any(|t| t.provider.region_tag.is_some());
            let restricted = every().any(|t| t.can.restricted());
            let alias: Arc<str> = Arc::from(alias.as_str());
            models.insert(
                Arc::clone(&alias),
                Arc::new(ModelRoute {
                    alias,
                    targets,
                    strategy,
                    eject,
                    retries,
                    regional,
                    restricted,
                    rules,
                    affinity_fields: mc.affinity_fields.clone(),
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
            governance,
            guardrails,
            server: cfg.server.clone(),
            models_json,
            state,
        })
    }

    /// Looks up a model alias.
    pub fn model(&self, alias: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(alias)
    }
}

/// An alias's (or a rule's) targets, compiled.
fn compile_targets(
    alias: &str,
    configs: &[crate::config::TargetConfig],
    providers: &HashMap<String, Arc<Provider>>,
    governance: &Governance,
) -> Result<Vec<Target>, ConfigError> {
    let mut targets = Vec::with_capacity(configs.len());
    for t in configs {
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
            model_json: bytes::Bytes::from(serde_json::Value::from(t.model.as_str()).to_string()),
            weight: t.weight.unwrap_or(1),
            can: Capabilities {
                context_tokens: t.context_tokens,
                no_tools: t.tools == Some(false),
                no_vision: t.vision == Some(false),
                no_json_schema: t.json_schema == Some(false),
            },
            price: governance
                .prices
                .get(&t.model)
                .map(|p| p.price.input.saturating_add(p.price.output)),
        });
    }
    Ok(targets)
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

    /// The plan of `r` for a request with `roll` and nothing else.
    fn order(r: &ModelRoute, roll: u32, health: &RouteHealth, now: Instant) -> Vec<u8> {
        let input = PlanInput {
            roll,
            ..PlanInput::default()
        };
        r.plan(&input, health, now).indexes().to_vec()
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
            assert_eq!(order(r, roll, &RouteHealth::new(), Instant::now()), [0, 1]);
        }
    }

    #[test]
    fn unavailable_targets_go_last_whatever_the_strategy() {
        use crate::route::{AttemptResult, EjectPolicy};
        let now = Instant::now();
        let health = RouteHealth::new();
        let eject = EjectPolicy {
            consecutive_failures: 1,
            cooldown: Duration::from_secs(60),
        };
        health.begin("a", "x", now);
        health.end("a", "x", AttemptResult::Failed, eject, now);
        for strategy in ["ordered", "weighted", "latency"] {
            let t = table(&TWO.replace(
                "[models.m]",
                &format!("[models.m]\nstrategy = {strategy:?}"),
            ));
            let r = t.model("m").unwrap();
            for roll in [0, 1, 77, 0x0001_0000, u32::MAX] {
                assert_eq!(order(r, roll, &health, now), [1, 0], "{strategy}");
            }
        }
    }

    #[test]
    fn a_full_provider_goes_last_and_the_plan_says_so() {
        let cfg = TWO.replace("kind = \"mock\"", "kind = \"mock\"\nmax_concurrency = 1");
        let t = table(&cfg);
        let r = t.model("m").unwrap();
        let now = Instant::now();
        let health = RouteHealth::new();
        // `b` (second) is full: nothing changes for the order, but the plan notes it.
        let b = &r.targets[1].provider;
        let permit = b.try_acquire().unwrap();
        let plan = r.plan(&PlanInput::default(), &health, now);
        assert_eq!(plan.indexes(), &[0, 1]);
        assert!(plan.was_full(1) && !plan.was_full(0));
        // Made first by the weighted draw, it still goes last while full.
        let weighted = table(
            &cfg.replace("model = \"x\" }", "model = \"x\", weight = 0 }")
                .replace("model = \"y\" }", "model = \"y\", weight = 1 }"),
        );
        let w = weighted.model("m").unwrap();
        let _full = w.targets[1].provider.try_acquire().unwrap();
        for roll in [0, 1, 77] {
            assert_eq!(order(w, roll, &health, now), [0, 1]);
        }
        // A session whose own target is full moves, and says why.
        let moved = (0..64u64)
            .map(|session| {
                let input = PlanInput {
                    session: Some(session),
                    ..PlanInput::default()
                };
                r.plan(&input, &health, now).affinity_moved
            })
            .find(Option::is_some)
            .flatten();
        assert_eq!(moved, Some("concurrency_limited"));
        drop(permit);
        let plan = r.plan(&PlanInput::default(), &health, now);
        assert!(!plan.was_full(1));
        assert!(RouteTable::compile(&Config::parse(&cfg.replace("= 1", "= 0")).unwrap()).is_err());
    }

    #[test]
    fn tables_compiled_on_one_state_share_counts_across_swaps() {
        let state = RouteState::new();
        let cfg = Config::parse(TWO).unwrap();
        let old = RouteTable::compile_in(&cfg, Arc::clone(&state)).unwrap();
        let permit = old.providers["a"].try_acquire().unwrap();
        let new = RouteTable::compile_in(&cfg, Arc::clone(&state)).unwrap();
        assert_eq!(new.providers["a"].load.in_flight(), 1);
        drop(old);
        drop(permit);
        assert_eq!(new.providers["a"].load.in_flight(), 0);
        // A table of its own starts afresh.
        let alone = RouteTable::compile(&cfg).unwrap();
        assert!(!Arc::ptr_eq(
            &alone.providers["a"].load,
            &new.providers["a"].load
        ));
    }

    #[test]
    fn latency_plan_prefers_the_lower_expected_wait() {
        use crate::route::{AttemptResult, EjectPolicy};
        let t = table(&TWO.replace("[models.m]", "[models.m]\nstrategy = \"latency\""));
        let r = t.model("m").unwrap();
        let now = Instant::now();
        let health = RouteHealth::new();
        let answer = |p: &str, m: &str, ms: u64| {
            health.begin(p, m, now);
            let ok = AttemptResult::Answered(Duration::from_millis(ms));
            health.end(p, m, ok, EjectPolicy::default(), now);
        };
        answer("a", "x", 40);
        answer("b", "y", 5);
        for roll in [0, 1, 77, 0x0001_0000, u32::MAX] {
            assert_eq!(order(r, roll, &health, now), &[1, 0]);
        }
        // Enough attempts waiting at the fast one make the slow one the better bet.
        for _ in 0..10 {
            health.begin("b", "y", now);
        }
        assert_eq!(
            r.plan(&PlanInput::default(), &health, now).indexes(),
            &[0, 1]
        );
    }

    #[test]
    fn weights_need_the_weighted_strategy() {
        let cfg = TWO
            .replace("[models.m]", "[models.m]\nstrategy = \"latency\"")
            .replace("model = \"y\" }", "model = \"y\", weight = 2 }");
        let err = RouteTable::compile(&Config::parse(&cfg).unwrap()).unwrap_err();
        assert!(err.to_string().contains("weighted"), "{err}");
    }

    #[test]
    fn a_region_holds_its_own_name_and_its_sub_regions_only() {
        let cfg = TWO.replace("kind = \"mock\"", "kind = \"mock\"\nregion = \"eu-west-1\"");
        let t = table(&cfg);
        let r = t.model("m").unwrap();
        let eu = r.targets.get(1).unwrap();
        assert!(eu.in_region("eu") && eu.in_region("EU") && eu.in_region("eu-west-1"));
        assert!(eu.in_region("eu-west"));
        assert!(!eu.in_region("e") && !eu.in_region("eu-w") && !eu.in_region("us"));
        // A target without a region is in none.
        assert!(!r.targets.first().unwrap().in_region("eu"));
        let input = PlanInput {
            region: Some("eu"),
            ..PlanInput::default()
        };
        let plan = r.plan(&input, &RouteHealth::new(), Instant::now());
        assert_eq!(plan.indexes(), &[1]);
        let input = PlanInput {
            region: Some("ap"),
            ..PlanInput::default()
        };
        assert!(r
            .plan(&input, &RouteHealth::new(), Instant::now())
            .indexes()
            .is_empty());
    }

    #[test]
    fn a_session_always_gets_the_same_order() {
        let t = table(&TWO.replace("[models.m]", "[models.m]\nstrategy = \"latency\""));
        let r = t.model("m").unwrap();
        let health = RouteHealth::new();
        let mut firsts = std::collections::HashSet::new();
        for session in 0..64u64 {
            let plans: std::collections::HashSet<Vec<u8>> = (0..20u32)
                .map(|roll| {
                    let input = PlanInput {
                        roll: roll.wrapping_mul(0x9e37_79b9),
                        session: Some(session),
                        ..PlanInput::default()
                    };
                    r.plan(&input, &health, Instant::now()).indexes().to_vec()
                })
                .collect();
            assert_eq!(plans.len(), 1, "session {session}: {plans:?}");
            firsts.insert(plans.into_iter().next().unwrap()[0]);
        }
        // Sessions spread over the targets.
        assert_eq!(firsts.len(), 2);
    }

    #[test]
    fn a_rule_holds_when_every_condition_given_holds() {
        let rule = |when: &str| RouteRule {
            when: toml::from_str(when).unwrap(),
            targets: Vec::new(),
        };
        let head =
            crate::http::RequestHead::parse(b"GET / HTTP/1.1\r\nx-team: Red\r\n\r\n").unwrap();
        let needs = Needs::default();
        let facts = RequestFacts {
            headers: &head.headers,
            tenant: Some("acme"),
            tier: Some("gold"),
            region: Some("eu"),
            needs: &needs,
            prompt_tokens: 500,
        };
        assert!(rule("").matches(&facts));
        assert!(rule("tenant = \"ACME\"\ntier = \"gold\"\nregion = \"eu\"").matches(&facts));
        assert!(rule("header = \"x-team\"").matches(&facts));
        assert!(rule("header = \"x-team\"\nvalue = \"red\"").matches(&facts));
        assert!(!rule("header = \"x-team\"\nvalue = \"blue\"").matches(&facts));
        assert!(!rule("header = \"x-other\"").matches(&facts));
        assert!(!rule("tenant = \"other\"").matches(&facts));
        assert!(!rule("tier = \"silver\"").matches(&facts));
        assert!(!rule("tools = true").matches(&facts));
        assert!(rule("images = false\nmax_prompt_tokens = 500").matches(&facts));
        assert!(!rule("min_prompt_tokens = 501").matches(&facts));
        let untiered = RequestFacts {
            tier: None,
            ..facts
        };
        assert!(!rule("tier = \"gold\"").matches(&untiered));
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
            let p = order(r, roll, &RouteHealth::new(), Instant::now());
            assert_eq!(p.len(), 3);
            firsts[p[0] as usize] += 1;
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
