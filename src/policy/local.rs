//! The default [`Governor`]: counters in this process, lock-free on the admission path.
//!
//! Rules are compiled once into maps of key and tenant counters (atomics, see `rate` and
//! `budget`) behind an `ArcSwap`, so an admission is a map lookup and a few compare-exchanges.
//! Keys added or removed at run time swap in a new map; the counters of the keys that stay
//! are shared with the old map, and an admission keeps the counters it reserved from (an
//! `Arc` in its [`Hold`]s), so it settles there even if its key is removed meanwhile.
//!
//! Admission order: for the key, then its tenant, requests, then tokens, then budget. A
//! refusal gives back whatever the request had already taken. Max output tokens are planned
//! from what the budgets can afford just before reserving; if a concurrent request takes that
//! room first, the reservation is refused rather than re-planned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::budget::{Budget, BudgetReservation};
use super::governor::{
    Admission, AdmitError, Ask, Governor, Now, Refusal, Rule, Scope, Settled, Usage, Used,
};
use super::rate::{Bucket, RateError, RateRefusal, RateState};
use super::window::Window;

/// The limits of one key or tenant; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// The spend cap.
    pub budget: Option<BudgetRule>,
}

/// A spend cap over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRule {
    /// The cap in micro-dollars (`budget::usd_to_micros`).
    pub cap_micros: u64,
    /// The calendar window it resets on.
    pub per: Window,
}

/// A key's rules: its own limits and the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRules {
    /// The key's name from `[auth]` (never the secret).
    pub name: String,
    /// The tenant whose limits also apply.
    pub tenant: Option<String>,
    /// The key's own limits.
    pub limits: Limits,
}

/// Everything the governor enforces, as the config (and later the store) gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GovernorRules {
    /// Tenants by name.
    pub tenants: Vec<(String, Limits)>,
    /// Keys.
    pub keys: Vec<KeyRules>,
}

/// Rules that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernorError {
    /// A limit is zero or too large.
    #[error("{scope} {name:?}: {error}")]
    Limit {
        /// Whose limit.
        scope: Scope,
        /// Its name.
        name: String,
        /// What is wrong with it.
        error: RateError,
    },
    /// A key names a tenant that is not defined.
    #[error("key {key:?} belongs to tenant {tenant:?}, which is not defined")]
    UnknownTenant {
        /// The key's name.
        key: String,
        /// The tenant it names.
        tenant: String,
    },
    /// The same name twice.
    #[error("{scope} {name:?} is defined twice")]
    Duplicate {
        /// Key or tenant.
        scope: Scope,
        /// The name.
        name: String,
    },
}

/// One key's or tenant's counters.
#[derive(Debug)]
pub(super) struct Counters {
    limits: Limits,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    budget: Option<Budget>,
}

/// What one admission holds in one scope, to settle or give back.
#[derive(Debug)]
pub(super) struct Hold {
    counters: Arc<Counters>,
    request: bool,
    tokens: u64,
    budget: Option<BudgetReservation>,
}

impl Counters {
    fn compile(scope: Scope, name: &str, limits: &Limits) -> Result<Self, GovernorError> {
        let bucket = |limit: Option<u64>| {
            limit
                .map(Bucket::per_minute)
                .transpose()
                .map_err(|error| GovernorError::Limit {
                    scope,
                    name: name.to_string(),
                    error,
                })
        };
        Ok(Self {
            limits: *limits,
            requests: bucket(limits.rpm)?,
            tokens: bucket(limits.tpm)?,
            budget: limits.budget.map(|b| Budget::new(b.cap_micros, b.per)),
        })
    }

    /// Takes one request, `tokens` and `micros` here, or nothing.
    fn take(
        self: &Arc<Self>,
        scope: Scope,
        tokens: u64,
        micros: u64,
        now: Now,
    ) -> Result<(Hold, Option<RateState>, Option<RateState>), Refusal> {
        let mut hold = Hold {
            counters: Arc::clone(self),
            request: false,
            tokens: 0,
            budget: None,
        };
        let rate_refusal = |rule, bucket: &Bucket, r: RateRefusal| Refusal {
            scope,
            rule,
            limit: bucket.limit(),
            retry_after_ms: r.retry_after_ns.map(|ns| ns.div_ceil(1_000_000)),
            rate: Some(r.state),
        };
        let requests = match &self.requests {
            Some(b) => match b.take(1, now.mono_ns) {
                Ok(s) => {
                    hold.request = true;
                    Some(s)
                }
                Err(r) => return Err(rate_refusal(Rule::Requests, b, r)),
            },
            None => None,
        };
        let token_state = match &self.tokens {
            Some(b) => match b.take(tokens, now.mono_ns) {
                Ok(s) => {
                    hold.tokens = tokens;
                    Some(s)
                }
                Err(r) => {
                    hold.give_back();
                    return Err(rate_refusal(Rule::Tokens, b, r));
                }
            },
            None => None,
        };
        if let Some(b) = &self.budget {
            match b.reserve(micros, now.unix_ms) {
                Ok(r) => hold.budget = Some(r),
                Err(r) => {
                    hold.give_back();
                    return Err(Refusal {
                        scope,
                        rule: Rule::Budget,
                        limit: r.cap,
                        retry_after_ms: r.resets_in_ms,
                        rate: None,
                    });
                }
            }
        }
        Ok((hold, requests, token_state))
    }

    fn usage(&self, now: Now) -> Usage {
        Usage {
            requests: self.requests.as_ref().map(|b| b.state(now.mono_ns)),
            tokens: self.tokens.as_ref().map(|b| b.state(now.mono_ns)),
            budget: self.budget.as_ref().map(|b| b.read(now.unix_ms)),
        }
    }
}

impl Hold {
    /// Gives everything back (a rollback or a release).
    fn give_back(self) {
        let c = &self.counters;
        if let (true, Some(b)) = (self.request, &c.requests) {
            b.refund(1);
        }
        if let Some(b) = &c.tokens {
            b.refund(self.tokens);
        }
        if let (Some(r), Some(b)) = (self.budget, &c.budget) {
            b.release(r);
        }
    }

    /// Settles to what the call used; returns the micro-dollars the budget recorded.
    fn settle(self, used: Used, now: Now) -> Option<u64> {
        let c = &self.counters;
        if let Some(b) = &c.tokens {
            if used.tokens < self.tokens {
                b.refund(self.tokens - used.tokens);
            } else {
                b.charge(used.tokens - self.tokens, now.mono_ns);
            }
        }
        match (self.budget, &c.budget) {
            (Some(r), Some(b)) => Some(b.settle(r, used.cost_micros)),
            _ => None,
        }
    }
}

/// Keys and tenants as compiled, swapped whole when keys change at run time.
#[derive(Debug, Default, Clone)]
struct Tables {
    tenants: HashMap<Arc<str>, Arc<Counters>>,
    keys: HashMap<Arc<str>, KeyEntry>,
}

#[derive(Debug, Clone)]
struct KeyEntry {
    counters: Arc<Counters>,
    tenant: Option<Arc<Counters>>,
}

impl Tables {
    fn key_entry(&self, key: &KeyRules) -> Result<KeyEntry, GovernorError> {
        let tenant = match &key.tenant {
            Some(t) => Some(Arc::clone(self.tenants.get(t.as_str()).ok_or_else(
                || GovernorError::UnknownTenant {
                    key: key.name.clone(),
                    tenant: t.clone(),
                },
            )?)),
            None => None,
        };
        Ok(KeyEntry {
            counters: Arc::new(Counters::compile(Scope::Key, &key.name, &key.limits)?),
            tenant,
        })
    }
}

/// The in-process, lock-free [`Governor`] (see the module docs).
#[derive(Debug)]
pub struct LocalGovernor {
    tables: ArcSwap<Tables>,
    origin: Instant,
    runs: super::runs::RunRegistry,
}

impl Default for LocalGovernor {
    /// A governor without rules (every key is admitted as is) until [`Self::replace`].
    fn default() -> Self {
        Self {
            tables: ArcSwap::from_pointee(Tables::default()),
            origin: Instant::now(),
            runs: Default::default(),
        }
    }
}

impl LocalGovernor {
    /// Compiles the rules; refuses zero limits, unknown tenants and duplicate names.
    pub fn new(rules: &GovernorRules) -> Result<Self, GovernorError> {
        let mut tables = Tables::default();
        for (name, limits) in &rules.tenants {
            let counters = Counters::compile(Scope::Tenant, name, limits)?;
            if tables
                .tenants
                .insert(Arc::from(name.as_str()), Arc::new(counters))
                .is_some()
            {
                return Err(GovernorError::Duplicate {
                    scope: Scope::Tenant,
                    name: name.clone(),
                });
            }
        }
        for key in &rules.keys {
            let entry = tables.key_entry(key)?;
            if tables
                .keys
                .insert(Arc::from(key.name.as_str()), entry)
                .is_some()
            {
                return Err(GovernorError::Duplicate {
                    scope: Scope::Key,
                    name: key.name.clone(),
                });
            }
        }
        Ok(Self {
            tables: ArcSwap::from_pointee(tables),
            origin: Instant::now(),
            runs: Default::default(),
        })
    }

    /// Every budget's settled spend in its current window, to persist: (scope, name,
    /// window id, micro-dollars); budgets with nothing spent are left out.
    pub fn spend_rows(&self) -> Vec<(Scope, String, u64, u64)> {
        let tables = self.tables.load();
        let tenants = tables.tenants.iter().map(|(n, c)| (Scope::Tenant, n, c));
        let keys = tables
            .keys
            .iter()
            .map(|(n, e)| (Scope::Key, n, &e.counters));
        tenants
            .chain(keys)
            .filter_map(|(scope, name, c)| {
                let (window, spent) = c.budget.as_ref()?.snapshot();
                (spent > 0).then(|| (scope, name.to_string(), window, spent))
            })
            .collect()
    }

    /// Adds persisted spend back to the budgets it belongs to (rows of other windows, or of
    /// keys and tenants without a budget now, are ignored).
    pub fn restore_spend(&self, rows: &[(Scope, String, u64, u64)], now: Now) {
        let tables = self.tables.load();
        for (scope, name, window, spent) in rows {
            let counters = match scope {
                Scope::Key => tables.keys.get(name.as_str()).map(|e| &e.counters),
                Scope::Tenant => tables.tenants.get(name.as_str()),
                Scope::Run => None,
            };
            if let Some(b) = counters.and_then(|c| c.budget.as_ref()) {
                b.restore(*window, *spent, now.unix_ms);
            }
        }
    }

    /// The agent runs in flight and the ids an operator killed.
    pub fn runs(&self) -> &super::runs::RunRegistry {
        &self.runs
    }

    /// Both clocks now, the monotonic one from this governor's origin (shared by shards).
    pub fn now(&self) -> Now {
        Now::read(self.origin)
    }

    /// Replaces every rule (a config reload): a key or tenant whose limits did not change
    /// keeps its counters (what it spent and holds), a changed one starts afresh, and the
    /// next admission on every shard sees the new rules. Admissions in flight settle on the
    /// counters they reserved from.
    pub fn replace(&self, rules: &GovernorRules) -> Result<(), GovernorError> {
        let fresh = Self::new(rules)?;
        let current = self.tables.load();
        let mut next = Tables::clone(&fresh.tables.load());
        let keep = |old: Option<&Arc<Counters>>, new: &mut Arc<Counters>| match old {
            Some(old) if old.limits == new.limits => *new = Arc::clone(old),
            // Changed limits: rate buckets start afresh, a budget over the same window
            // keeps counting what was spent and is held.
            Some(old) => {
                if let (Some(b), Some(o)) = (&new.budget, &old.budget) {
                    b.adopt(o);
                }
            }
            None => {}
        };
        for (name, counters) in next.tenants.iter_mut() {
            keep(current.tenants.get(name), counters);
        }
        for (name, entry) in next.keys.iter_mut() {
            keep(
                current.keys.get(name).map(|e| &e.counters),
                &mut entry.counters,
            );
        }
        // Keys point at their tenant's counters as kept above.
        let tenants = next.tenants.clone();
        let rule_tenant: HashMap<&str, &str> = rules
            .keys
            .iter()
            .filter_map(|k| Some((k.name.as_str(), k.tenant.as_deref()?)))
            .collect();
        for (name, entry) in next.keys.iter_mut() {
            entry.tenant = rule_tenant
                .get(&**name)
                .and_then(|t| tenants.get(*t))
                .map(Arc::clone);
        }
        self.tables.store(Arc::new(next));
        Ok(())
    }

    /// Adds a key at run time (the admin API); effective on the next admission everywhere.
    pub fn add_key(&self, key: &KeyRules) -> Result<(), GovernorError> {
        let mut result = Ok(());
        self.tables.rcu(|current| {
            let mut next = Tables::clone(current);
            result = match next.key_entry(key) {
                Ok(_) if next.keys.contains_key(key.name.as_str()) => {
                    Err(GovernorError::Duplicate {
                        scope: Scope::Key,
                        name: key.name.clone(),
                    })
                }
                Ok(entry) => {
                    next.keys.insert(Arc::from(key.name.as_str()), entry);
                    Ok(())
                }
                Err(e) => Err(e),
            };
            next
        });
        result
    }

    /// Removes a key's rules (revocation); admissions in flight still settle. Returns whether
    /// it had rules.
    pub fn remove_key(&self, name: &str) -> bool {
        let mut removed = false;
        self.tables.rcu(|current| {
            let mut next = Tables::clone(current);
            removed = next.keys.remove(name).is_some();
            next
        });
        removed
    }

    /// Plans the request's max output tokens and worst-case cost against every budget.
    fn plan(
        ask: &Ask<'_>,
        scopes: &[(Scope, &Arc<Counters>)],
        now: Now,
    ) -> Result<(Option<u64>, u64), AdmitError> {
        let wanted = ask.max_output_tokens.or(ask.output_cap);
        let mut budgets = scopes
            .iter()
            .filter_map(|(s, c)| c.budget.as_ref().map(|b| (*s, b)))
            .peekable();
        let Some((first, _)) = budgets.peek() else {
            return Ok((wanted, 0));
        };
        let price = ask.price.ok_or(AdmitError::Unpriced(*first))?;
        let prompt = price.input_cost(ask.prompt_tokens);
        let floor = ask.min_output_tokens.min(wanted.unwrap_or(u64::MAX));
        let mut out = wanted;
        for (scope, b) in budgets {
            let refused = || {
                AdmitError::Refused(Refusal {
                    scope,
                    rule: Rule::Budget,
                    limit: b.cap(),
                    retry_after_ms: b.per().resets_in_ms(now.unix_ms),
                    rate: None,
                })
            };
            let rest = b
                .affordable(now.unix_ms)
                .checked_sub(prompt)
                .ok_or_else(refused)?;
            if let Some(pays) = price.output_tokens_for(rest) {
                if pays < floor {
                    return Err(refused());
                }
                out = Some(out.map_or(pays, |o| o.min(pays)));
            }
        }
        let worst = prompt.saturating_add(price.output_cost(out.unwrap_or(0)));
        Ok((out, worst))
    }
}

/// An agent run's spend cap (`max_usd`, never resetting), reserved and settled with the
/// key's and tenant's in one admission.
#[derive(Debug)]
pub struct RunBudget(Arc<Counters>);

impl RunBudget {
    /// A cap of `cap_micros` for the run's whole life.
    pub fn new(cap_micros: u64) -> Self {
        Self(Arc::new(Counters {
            limits: Limits {
                rpm: None,
                tpm: None,
                budget: Some(BudgetRule {
                    cap_micros,
                    per: Window::Total,
                }),
            },
            requests: None,
            tokens: None,
            budget: Some(Budget::new(cap_micros, Window::Total)),
        }))
    }

    /// The run budget's standing.
    pub fn read(&self, now: Now) -> Option<super::budget::BudgetUsage> {
        self.0.budget.as_ref().map(|b| b.read(now.unix_ms))
    }
}

/// The tighter of two rate states (fewer remaining).
fn tighter(a: Option<RateState>, b: Option<RateState>) -> Option<RateState> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl Governor for LocalGovernor {
    fn admit(&self, ask: &Ask<'_>, now: Now) -> Result<Admission, AdmitError> {
        let tables = self.tables.load();
        let mut admission = Admission {
            max_output_tokens: ask.max_output_tokens,
            max_output_changed: false,
            reserved_tokens: 0,
            reserved_micros: 0,
            requests: None,
            tokens: None,
            holds: Vec::new(),
        };
        let mut scopes: Vec<(Scope, &Arc<Counters>)> = Vec::with_capacity(3);
        if let Some(entry) = tables.keys.get(ask.key) {
            scopes.push((Scope::Key, &entry.counters));
            if let Some(t) = &entry.tenant {
                scopes.push((Scope::Tenant, t));
            }
        }
        if let Some(run) = ask.run {
            scopes.push((Scope::Run, &run.0));
        }
        if scopes.is_empty() {
            return Ok(admission);
        }
        let scopes = &scopes[..];
        let (out, micros) = Self::plan(ask, scopes, now)?;
        let tokens = ask.prompt_tokens.saturating_add(out.unwrap_or(0));
        admission.holds.reserve_exact(scopes.len());
        for (scope, counters) in scopes {
            match counters.take(*scope, tokens, micros, now) {
                Ok((hold, requests, token_state)) => {
                    admission.holds.push(hold);
                    admission.requests = tighter(admission.requests, requests);
                    admission.tokens = tighter(admission.tokens, token_state);
                }
                Err(refusal) => {
                    admission.holds.into_iter().for_each(Hold::give_back);
                    return Err(AdmitError::Refused(refusal));
                }
            }
        }
        admission.max_output_changed = out != ask.max_output_tokens;
        admission.max_output_tokens = out;
        admission.reserved_tokens = tokens;
        admission.reserved_micros = micros;
        Ok(admission)
    }

    fn settle(&self, admission: Admission, used: Used, now: Now) -> Settled {
        let mut recorded = None;
        for hold in admission.holds {
            if let Some(charged) = hold.settle(used, now) {
                recorded = Some(charged);
            }
        }
        Settled {
            cost_micros: recorded.unwrap_or(used.cost_micros),
        }
    }

    fn release(&self, admission: Admission) {
        admission.holds.into_iter().for_each(Hold::give_back);
    }

    fn read(&self, scope: Scope, name: &str, now: Now) -> Option<Usage> {
        let tables = self.tables.load();
        let counters = match scope {
            Scope::Key => &tables.keys.get(name)?.counters,
            Scope::Tenant => tables.tenants.get(name)?,
            // Runs are read through the run registry, by run id.
            Scope::Run => return None,
        };
        Some(counters.usage(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::price::Price;

    /// 2026-11-23T12:00:00.123Z
    const T: u64 = 1_795_435_200_123;
    const NOW: Now = Now {
        mono_ns: 1_000_000_000,
        unix_ms: T,
    };

    /// $1 per 1M input and output tokens: one micro-dollar per token.
    const PRICE: Price = Price {
        input: 1_000_000,
        cached_input: 1_000_000,
        output: 1_000_000,
    };

    fn ask(key: &str, prompt: u64, max_out: Option<u64>) -> Ask<'_> {
        Ask {
            key,
            prompt_tokens: prompt,
            max_output_tokens: max_out,
            output_cap: None,
            min_output_tokens: 16,
            price: Some(PRICE),
            run: None,
        }
    }

    fn budget(cap_micros: u64, per: Window) -> Option<BudgetRule> {
        Some(BudgetRule { cap_micros, per })
    }

    fn governor(key: Limits, tenant: Limits) -> LocalGovernor {
        LocalGovernor::new(&GovernorRules {
            tenants: vec![("acme".into(), tenant)],
            keys: vec![
                KeyRules {
                    name: "bot-1".into(),
                    tenant: Some("acme".into()),
                    limits: key,
                },
                KeyRules {
                    name: "bot-2".into(),
                    tenant: Some("acme".into()),
                    limits: Limits::default(),
                },
            ],
        })
        .unwrap()
    }

    fn refusal(e: AdmitError) -> Refusal {
        match e {
            AdmitError::Refused(r) => r,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_key_without_rules_is_admitted_as_is() {
        let g = governor(Limits::default(), Limits::default());
        let a = g.admit(&ask("unknown", 10, Some(5)), NOW).unwrap();
        assert_eq!(a.max_output_tokens, Some(5));
        assert!(!a.max_output_changed);
        assert!(a.requests.is_none() && a.tokens.is_none());
        g.release(a);
        assert!(g.read(Scope::Key, "unknown", NOW).is_none());
    }

    #[test]
    fn headers_report_the_tightest_scope() {
        let key = Limits {
            rpm: Some(10),
            tpm: Some(1000),
            budget: None,
        };
        let tenant = Limits {
            rpm: Some(3),
            tpm: Some(5000),
            budget: None,
        };
        let g = governor(key, tenant);
        let a = g.admit(&ask("bot-1", 100, Some(100)), NOW).unwrap();
        let r = a.requests.unwrap();
        assert_eq!((r.limit, r.remaining), (3, 2));
        let t = a.tokens.unwrap();
        assert_eq!((t.limit, t.remaining), (1000, 800));
        assert_eq!(a.reserved_tokens, 200);
        g.settle(
            a,
            Used {
                tokens: 50,
                cost_micros: 0,
            },
            NOW,
        );
        let u = g.read(Scope::Key, "bot-1", NOW).unwrap();
        assert_eq!(u.tokens.unwrap().remaining, 950);
        assert_eq!(
            u.requests.unwrap().remaining,
            9,
            "a settled request stays counted"
        );
        let u = g.read(Scope::Tenant, "acme", NOW).unwrap();
        assert_eq!(u.requests.unwrap().remaining, 2);
        assert_eq!(u.tokens.unwrap().remaining, 4950);
    }

    /// The tenant refuses after the key has taken its share: the key gets everything back.
    #[test]
    fn a_refusal_by_one_rule_leaves_the_others_uncharged() {
        let key = Limits {
            rpm: Some(100),
            tpm: Some(10_000),
            budget: budget(1_000_000, Window::Day),
        };
        let tenant = Limits {
            rpm: Some(100),
            tpm: Some(10_000),
            budget: budget(1000, Window::Day),
        };
        let g = governor(key, tenant);
        // Another key of the tenant spends most of the tenant's budget.
        let other = g.admit(&ask("bot-2", 900, Some(50)), NOW).unwrap();
        let r = refusal(g.admit(&ask("bot-1", 500, Some(100)), NOW).unwrap_err());
        assert_eq!(
            (r.scope, r.rule, r.limit),
            (Scope::Tenant, Rule::Budget, 1000)
        );
        assert_eq!(r.retry_after_ms, Some(12 * 3_600_000 - 123));
        let k = g.read(Scope::Key, "bot-1", NOW).unwrap();
        assert_eq!(k.requests.unwrap().remaining, 100);
        assert_eq!(k.tokens.unwrap().remaining, 10_000);
        let b = k.budget.unwrap();
        assert_eq!((b.spent, b.reserved, b.remaining), (0, 0, 1_000_000));
        let t = g.read(Scope::Tenant, "acme", NOW).unwrap();
        assert_eq!(
            t.requests.unwrap().remaining,
            99,
            "only the other key's request"
        );
        assert_eq!(t.tokens.unwrap().remaining, 10_000 - 950);
        g.release(other);
        let t = g.read(Scope::Tenant, "acme", NOW).unwrap();
        assert_eq!(t.requests.unwrap().remaining, 100);
        assert_eq!(t.budget.unwrap().remaining, 1000);
        // The same tenant token refusal, after the key's request and tokens were taken.
        let tenant_tpm = Limits {
            tpm: Some(100),
            ..Limits::default()
        };
        let g = governor(key, tenant_tpm);
        let r = refusal(g.admit(&ask("bot-1", 90, Some(20)), NOW).unwrap_err());
        assert_eq!((r.scope, r.rule), (Scope::Tenant, Rule::Tokens));
        assert!(r.rate.is_some());
        let k = g.read(Scope::Key, "bot-1", NOW).unwrap();
        assert_eq!(k.requests.unwrap().remaining, 100);
        assert_eq!(k.tokens.unwrap().remaining, 10_000);
        assert_eq!(k.budget.unwrap().reserved, 0);
    }

    #[test]
    fn refusals_name_the_rule_and_never_the_key() {
        let g = governor(
            Limits {
                rpm: Some(1),
                ..Limits::default()
            },
            Limits::default(),
        );
        let a = g.admit(&ask("bot-1", 1, Some(1)), NOW).unwrap();
        let r = refusal(g.admit(&ask("bot-1", 1, Some(1)), NOW).unwrap_err());
        assert_eq!(
            (r.scope, r.rule, r.retry_after_ms),
            (Scope::Key, Rule::Requests, Some(60_000))
        );
        let text = AdmitError::Refused(r).to_string();
        assert_eq!(
            text,
            "key request limit of 1 per minute reached; resets in 1m0s"
        );
        assert!(!text.contains("bot-1"));
        g.release(a);
        assert!(g.admit(&ask("bot-1", 1, Some(1)), NOW).is_ok());
    }

    #[test]
    fn budgets_set_or_lower_max_tokens_and_refuse_below_the_floor() {
        let g = governor(
            Limits {
                budget: budget(1000, Window::Total),
                ..Limits::default()
            },
            Limits::default(),
        );
        // No max tokens: set to what the budget pays after the prompt.
        let a = g.admit(&ask("bot-1", 100, None), NOW).unwrap();
        assert_eq!(
            (a.max_output_tokens, a.max_output_changed),
            (Some(900), true)
        );
        assert_eq!(a.reserved_micros, 1000);
        g.release(a);
        // Too many: lowered. Few enough: kept.
        let a = g.admit(&ask("bot-1", 100, Some(5000)), NOW).unwrap();
        assert_eq!(a.max_output_tokens, Some(900));
        g.release(a);
        let a = g.admit(&ask("bot-1", 100, Some(300)), NOW).unwrap();
        assert_eq!(
            (a.max_output_tokens, a.max_output_changed),
            (Some(300), false)
        );
        assert_eq!(a.reserved_micros, 400);
        // The model's cap bounds a request without max tokens.
        let capped = Ask {
            output_cap: Some(200),
            ..ask("bot-1", 100, None)
        };
        let b = g.admit(&capped, NOW).unwrap();
        assert_eq!(b.max_output_tokens, Some(200));
        g.release(b);
        // 600 left: a 590-token prompt leaves 10 output tokens, under the floor of 16.
        let r = refusal(g.admit(&ask("bot-1", 590, None), NOW).unwrap_err());
        assert_eq!((r.rule, r.retry_after_ms), (Rule::Budget, None));
        assert!(r.to_string().contains("does not reset"));
        // A client that asks for fewer than the floor itself is not refused for it.
        let c = g.admit(&ask("bot-1", 590, Some(5)), NOW).unwrap();
        assert_eq!(c.max_output_tokens, Some(5));
        g.release(c);
        // Settling charges the real cost, clamped to the reservation.
        let s = g.settle(
            a,
            Used {
                tokens: 150,
                cost_micros: 150,
            },
            NOW,
        );
        assert_eq!(s.cost_micros, 150);
        let a = g.admit(&ask("bot-1", 10, Some(10)), NOW).unwrap();
        let s = g.settle(
            a,
            Used {
                tokens: 90,
                cost_micros: 90,
            },
            NOW,
        );
        assert_eq!(s.cost_micros, 20, "clamped to the reservation");
        let u = g.read(Scope::Key, "bot-1", NOW).unwrap().budget.unwrap();
        assert_eq!((u.spent, u.reserved, u.remaining), (170, 0, 830));
    }

    #[test]
    fn a_budget_without_a_price_is_refused() {
        let g = governor(
            Limits::default(),
            Limits {
                budget: budget(1000, Window::Day),
                ..Limits::default()
            },
        );
        let unpriced = Ask {
            price: None,
            ..ask("bot-1", 1, Some(1))
        };
        assert_eq!(
            g.admit(&unpriced, NOW).unwrap_err(),
            AdmitError::Unpriced(Scope::Tenant)
        );
    }

    #[test]
    fn tokens_used_beyond_the_reservation_are_charged() {
        let g = governor(
            Limits {
                tpm: Some(1000),
                ..Limits::default()
            },
            Limits::default(),
        );
        let a = g.admit(&ask("bot-1", 100, Some(100)), NOW).unwrap();
        g.settle(
            a,
            Used {
                tokens: 700,
                cost_micros: 0,
            },
            NOW,
        );
        let u = g.read(Scope::Key, "bot-1", NOW).unwrap();
        assert_eq!(u.tokens.unwrap().remaining, 300);
        let r = refusal(g.admit(&ask("bot-1", 300, Some(100)), NOW).unwrap_err());
        assert_eq!(r.rule, Rule::Tokens);
        assert_eq!(r.retry_after_ms, Some(6_000));
        let later = Now {
            mono_ns: NOW.mono_ns + 6_000_000_000,
            ..NOW
        };
        assert!(g.admit(&ask("bot-1", 300, Some(100)), later).is_ok());
    }

    #[test]
    fn keys_come_and_go_at_run_time() {
        let g = governor(Limits::default(), Limits::default());
        let limited = KeyRules {
            name: "bot-3".into(),
            tenant: Some("acme".into()),
            limits: Limits {
                rpm: Some(1),
                ..Limits::default()
            },
        };
        g.add_key(&limited).unwrap();
        assert!(matches!(
            g.add_key(&limited),
            Err(GovernorError::Duplicate { .. })
        ));
        let orphan = KeyRules {
            tenant: Some("nobody".into()),
            name: "bot-4".into(),
            ..limited.clone()
        };
        assert!(matches!(
            g.add_key(&orphan),
            Err(GovernorError::UnknownTenant { .. })
        ));
        let a = g.admit(&ask("bot-3", 1, Some(1)), NOW).unwrap();
        assert!(g.admit(&ask("bot-3", 1, Some(1)), NOW).is_err());
        assert!(g.remove_key("bot-3"));
        assert!(!g.remove_key("bot-3"));
        // The admission in flight still settles into the counters it reserved from.
        g.release(a);
        assert!(g.read(Scope::Key, "bot-3", NOW).is_none());
    }

    #[test]
    fn a_run_budget_is_held_with_the_key_and_tenant_or_refuses_as_the_run() {
        let g = governor(Limits::default(), Limits::default());
        let run = RunBudget::new(500);
        let with_run = |key| Ask {
            run: Some(&run),
            ..ask(key, 100, Some(300))
        };
        // Even a key without rules is held to its run's budget.
        let a = g.admit(&with_run("unknown"), NOW).unwrap();
        assert_eq!(a.reserved_micros, 400);
        let r = refusal(g.admit(&with_run("bot-1"), NOW).unwrap_err());
        assert_eq!(
            (r.scope, r.rule, r.retry_after_ms),
            (Scope::Run, Rule::Budget, None)
        );
        assert!(r.to_string().starts_with("run budget of $0.000500"), "{r}");
        g.settle(a, used(150), NOW);
        let usage = run.read(NOW).unwrap();
        assert_eq!((usage.spent, usage.reserved), (150, 0));
        // 350 left: the next call's 300 output tokens are lowered to 250.
        let b = g.admit(&with_run("bot-1"), NOW).unwrap();
        assert_eq!(b.max_output_tokens, Some(250));
        g.release(b);
    }

    #[test]
    fn spend_survives_a_new_cap_and_a_restart() {
        let capped = |cap| Limits {
            budget: budget(cap, Window::Day),
            ..Limits::default()
        };
        let rules = |cap| GovernorRules {
            tenants: vec![],
            keys: vec![KeyRules {
                name: "bot-1".into(),
                tenant: None,
                limits: capped(cap),
            }],
        };
        let g = LocalGovernor::new(&rules(1_000)).unwrap();
        let a = g.admit(&ask("bot-1", 100, Some(100)), NOW).unwrap();
        g.settle(a, used(150), NOW);
        // A bigger cap over the same window keeps the spend.
        g.replace(&rules(2_000)).unwrap();
        let spent = |g: &LocalGovernor| {
            g.read(Scope::Key, "bot-1", NOW)
                .unwrap()
                .budget
                .unwrap()
                .spent
        };
        assert_eq!(spent(&g), 150);
        let rows = g.spend_rows();
        assert_eq!(
            rows,
            vec![(Scope::Key, "bot-1".to_string(), Window::Day.id(T), 150)]
        );
        // A new process gets it back; a row from another window is ignored.
        let fresh = LocalGovernor::new(&rules(2_000)).unwrap();
        let stale = (Scope::Key, "bot-1".to_string(), Window::Day.id(T) - 1, 999);
        fresh.restore_spend(&[rows[0].clone(), stale], NOW);
        assert_eq!(spent(&fresh), 150);
        assert_eq!(
            fresh
                .read(Scope::Key, "bot-1", NOW)
                .unwrap()
                .budget
                .unwrap()
                .remaining,
            1_850
        );
    }

    #[test]
    fn a_reload_keeps_the_counters_of_unchanged_rules() {
        let one_rpm = Limits {
            rpm: Some(1),
            ..Limits::default()
        };
        let g = governor(one_rpm, one_rpm);
        let a = g.admit(&ask("bot-1", 1, Some(1)), NOW).unwrap();
        g.settle(a, used(0), NOW);
        // Same rules: bot-1's and acme's minute stay spent.
        let same = GovernorRules {
            tenants: vec![("acme".into(), one_rpm)],
            keys: vec![KeyRules {
                name: "bot-1".into(),
                tenant: Some("acme".into()),
                limits: one_rpm,
            }],
        };
        g.replace(&same).unwrap();
        assert_eq!(
            refusal(g.admit(&ask("bot-1", 1, Some(1)), NOW).unwrap_err()).scope,
            Scope::Key
        );
        // bot-1's limit changes (it starts afresh) but its tenant's does not.
        let mut changed = same.clone();
        changed.keys[0].limits.rpm = Some(5);
        g.replace(&changed).unwrap();
        assert_eq!(
            refusal(g.admit(&ask("bot-1", 1, Some(1)), NOW).unwrap_err()).scope,
            Scope::Tenant
        );
        // A key the new rules drop has none; bad rules leave the old ones in place.
        assert!(g.read(Scope::Key, "bot-2", NOW).is_none());
        let mut bad = changed.clone();
        bad.keys[0].tenant = Some("nobody".into());
        assert!(g.replace(&bad).is_err());
        assert!(g.read(Scope::Key, "bot-1", NOW).is_some());
    }

    #[test]
    fn rejects_bad_rules() {
        let zero = GovernorRules {
            tenants: vec![(
                "acme".into(),
                Limits {
                    tpm: Some(0),
                    ..Limits::default()
                },
            )],
            keys: vec![],
        };
        let e = LocalGovernor::new(&zero).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tenant \"acme\": a rate limit must be at least 1"
        );
        let twice = GovernorRules {
            tenants: vec![
                ("acme".into(), Limits::default()),
                ("acme".into(), Limits::default()),
            ],
            keys: vec![],
        };
        assert!(matches!(
            LocalGovernor::new(&twice),
            Err(GovernorError::Duplicate { .. })
        ));
    }

    /// 8 threads × 10,000 admissions through the whole interface, from two keys, against a
    /// tenant budget that fits a fraction of them: settled spend stays at or under the cap,
    /// everything unused comes back, and admissions succeed again in the next window.
    #[test]
    fn concurrent_admissions_never_overshoot() {
        let cap = 2_000_000;
        let tpm = 1_000_000_000;
        let g = Arc::new(governor(
            Limits {
                rpm: Some(1_000_000),
                ..Limits::default()
            },
            Limits {
                tpm: Some(tpm),
                budget: budget(cap, Window::Day),
                ..Limits::default()
            },
        ));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    let key = if t % 2 == 0 { "bot-1" } else { "bot-2" };
                    let (mut spent, mut held) = (0u64, Vec::new());
                    for i in 0..10_000u64 {
                        let prompt = 100 + (t * 37 + i * 11) % 400;
                        let max_out = [None, Some(50), Some(5000)][(i % 3) as usize];
                        let asked = Ask {
                            output_cap: Some(1000),
                            ..ask(key, prompt, max_out)
                        };
                        let Ok(a) = g.admit(&asked, NOW) else {
                            continue;
                        };
                        let worst = a.reserved_micros;
                        match i % 4 {
                            0 => g.release(a),
                            1 => held.push(a),
                            // Use less than reserved, or (wrongly) more.
                            2 => spent += g.settle(a, used(worst / 3), NOW).cost_micros,
                            _ => spent += g.settle(a, used(worst * 3), NOW).cost_micros,
                        }
                    }
                    held.into_iter().for_each(|a| g.release(a));
                    spent
                })
            })
            .collect();
        let spent: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let b = g.read(Scope::Tenant, "acme", NOW).unwrap().budget.unwrap();
        assert!(spent <= cap, "{spent} > {cap}");
        assert_eq!(b.spent, spent);
        assert_eq!(b.reserved, 0, "unused reservations came back");
        // A quarter of the admissions are held to the end, so spend fills only part of it.
        assert!(spent > cap / 4, "the budget was used: {spent}");
        // Later admissions succeed again once the window holds room.
        let next_day = Now {
            mono_ns: NOW.mono_ns + 10 * crate::policy::rate::MINUTE_NS,
            unix_ms: T + 86_400_000,
        };
        let a = g.admit(&ask("bot-1", 100, Some(100)), next_day).unwrap();
        g.settle(a, used(200), next_day);
        let b = g
            .read(Scope::Tenant, "acme", next_day)
            .unwrap()
            .budget
            .unwrap();
        assert_eq!((b.spent, b.reserved), (200, 0));
    }

    /// A token limit under contention: the tokens held at once never pass it, and all of it
    /// can be taken again once released.
    #[test]
    fn concurrent_token_reservations_never_exceed_the_limit() {
        let tpm = 50_000;
        let g = Arc::new(governor(
            Limits {
                tpm: Some(tpm),
                ..Limits::default()
            },
            Limits::default(),
        ));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..10_000u64 {
                        let prompt = 10 + (t * 7 + i * 3) % 90;
                        if let Ok(a) = g.admit(&ask("bot-1", prompt, Some(10)), NOW) {
                            held.push(a);
                        }
                    }
                    held
                })
            })
            .collect();
        let held: Vec<Admission> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let total: u64 = held.iter().map(|a| a.reserved_tokens).sum();
        assert!(total <= tpm, "{total} > {tpm}");
        assert!(total > tpm - 110, "capacity lost: {total}");
        held.into_iter().for_each(|a| g.release(a));
        let u = g.read(Scope::Key, "bot-1", NOW).unwrap();
        assert_eq!(u.tokens.unwrap().remaining, tpm);
        assert!(g.admit(&ask("bot-1", tpm - 10, Some(10)), NOW).is_ok());
    }

    fn used(cost_micros: u64) -> Used {
        Used {
            tokens: cost_micros,
            cost_micros,
        }
    }
}
