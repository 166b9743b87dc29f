//! The interface the request path uses for limits and budgets: admit, settle, release, read.
//!
//! The request path talks only to [`Governor`], so where the counters live can change (the
//! in-process [`LocalGovernor`](super::LocalGovernor) today, a store shared by several gateway
//! nodes later) without touching it. One call to [`Governor::admit`] checks and reserves
//! against every rule that applies to the request (its key, the key's tenant, later its run):
//! either all of them hold their share, or none does. The caller then ends the admission
//! exactly once, with [`Governor::settle`] (the call was made: charge what it used) or
//! [`Governor::release`] (it was not: give everything back).
//!
//! Nothing here carries key material: rules are named by scope (key or tenant), and keys by
//! the name `[auth]` gives them.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::budget::BudgetUsage;
use super::local::Hold;
use super::price::Price;
use super::rate::{duration_string, RateState};

/// The two clocks a decision needs, passed in so tests are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic nanoseconds from any fixed origin (rate limits).
    pub mono_ns: u64,
    /// Wall clock, Unix milliseconds (calendar windows of budgets).
    pub unix_ms: u64,
}

impl Now {
    /// Reads both clocks; `origin` is a process-wide `Instant` taken once at start-up, so
    /// every shard's monotonic nanoseconds share it.
    pub fn read(origin: Instant) -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            mono_ns: u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            unix_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Whose rule it is; a refusal names the scope, never the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The gateway key's own rules.
    Key,
    /// The rules of the tenant the key belongs to.
    Tenant,
    /// The rules of the agent run the request belongs to.
    Run,
}

/// Which kind of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// The spend cap.
    Budget,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Key => "key",
            Self::Tenant => "tenant",
            Self::Run => "run",
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Requests => "request limit",
            Self::Tokens => "token limit",
            Self::Budget => "budget",
        })
    }
}

/// What one request asks to be admitted for.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The key's name from `[auth]` (never the secret); a key without rules is admitted as is.
    pub key: &'a str,
    /// An upper bound of the prompt's tokens.
    pub prompt_tokens: u64,
    /// The client's max output tokens, if it set one.
    pub max_output_tokens: Option<u64>,
    /// The model's own max output tokens when known: reserved for a request that sets none,
    /// and the most a budget will set. With neither this nor `max_output_tokens` (and no
    /// budget), token limits reserve the prompt alone and settling charges the output.
    pub output_cap: Option<u64>,
    /// Refuse rather than lower max output tokens below this (config; default 16). A client
    /// that asks for fewer itself is not refused for it.
    pub min_output_tokens: u64,
    /// The target model's price; required when a budget applies.
    pub price: Option<Price>,
    /// The agent run's own budget, if the request belongs to a run that has one.
    pub run: Option<&'a super::local::RunBudget>,
}

/// An admitted request: what to send upstream, what the headers say, and what is held.
///
/// Not `Clone`: end it exactly once with [`Governor::settle`] or [`Governor::release`].
/// Dropped without either, its tokens come back as the bucket refills but its budget share
/// stays held until the window ends.
#[must_use = "settle or release an admission"]
#[derive(Debug)]
pub struct Admission {
    /// The max output tokens to send upstream (`None`: leave the request as it is).
    pub max_output_tokens: Option<u64>,
    /// Whether `max_output_tokens` differs from the client's (the body must be rewritten).
    pub max_output_changed: bool,
    /// Tokens reserved against token limits (prompt bound plus max output).
    pub reserved_tokens: u64,
    /// Micro-dollars reserved against budgets (the worst-case cost), for the record.
    pub reserved_micros: u64,
    /// The tightest request limit after admission, for `x-ratelimit-*-requests`.
    pub requests: Option<RateState>,
    /// The tightest token limit after admission, for `x-ratelimit-*-tokens`.
    pub tokens: Option<RateState>,
    pub(super) holds: Vec<Hold>,
}

/// A request refused by one rule: which, its limit, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Whose rule refused.
    pub scope: Scope,
    /// Which rule refused.
    pub rule: Rule,
    /// The rule's limit: requests or tokens per minute, or the cap in micro-dollars.
    pub limit: u64,
    /// Milliseconds until the request could be admitted (for a budget: until the window
    /// resets); `None` when it never can (larger than the limit, or a `total` budget).
    pub retry_after_ms: Option<u64>,
    /// For a rate limit, the state its `x-ratelimit-*` headers report.
    pub rate: Option<RateState>,
}

impl Refusal {
    /// Whole seconds for the `retry-after` header, rounded up; `None` when waiting won't help.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_ms.map(|ms| ms.div_ceil(1000))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Rule::Budget => write!(
                f,
                "{} budget of ${:.6} exhausted",
                self.scope,
                self.limit as f64 / 1e6
            )?,
            rule => write!(
                f,
                "{} {rule} of {} per minute reached",
                self.scope, self.limit
            )?,
        }
        match self.retry_after_ms {
            Some(ms) => write!(
                f,
                "; resets in {}",
                duration_string(ms.saturating_mul(1_000_000))
            ),
            None if self.rule == Rule::Budget => f.write_str("; it does not reset"),
            None => f.write_str("; the request is larger than the limit"),
        }
    }
}

/// Why a request is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// A limit or budget refused it (a 429 in the client's dialect).
    #[error("{0}")]
    Refused(Refusal),
    /// A budget applies but the target's model has no price, so its cost cannot be bounded.
    #[error("a {0} budget applies but the model has no price")]
    Unpriced(Scope),
}

/// What a finished call used, to settle its admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// Tokens used (prompt plus output), as the provider reported them, else the reservation.
    pub tokens: u64,
    /// The call's cost in micro-dollars from its usage.
    pub cost_micros: u64,
}

/// What settling recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Micro-dollars recorded against the budgets: the actual cost, clamped to the reservation
    /// (with no budget, the actual cost).
    pub cost_micros: u64,
}

/// A key's or tenant's standing, for the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Requests per minute, if limited.
    pub requests: Option<RateState>,
    /// Tokens per minute, if limited.
    pub tokens: Option<RateState>,
    /// The budget, if any.
    pub budget: Option<BudgetUsage>,
}

/// Where the counters live: the request path's only way to limits and budgets.
pub trait Governor: Send + Sync {
    /// Checks and reserves against every rule that applies, all or none.
    fn admit(&self, ask: &Ask<'_>, now: Now) -> Result<Admission, AdmitError>;

    /// Ends an admission whose call was made: token limits are charged what it used (unused
    /// tokens come back, extra ones are charged), budgets record its cost clamped to the
    /// reservation. The request itself stays counted.
    fn settle(&self, admission: Admission, used: Used, now: Now) -> Settled;

    /// Ends an admission whose call was not made: everything it holds comes back, the request
    /// slot included.
    fn release(&self, admission: Admission);

    /// The current standing of a key or tenant by name; `None` when it has no rules.
    fn read(&self, scope: Scope, name: &str, now: Now) -> Option<Usage>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_can_sit_behind_a_pointer() {
        fn takes(_: &dyn Governor) {}
        let g = crate::policy::LocalGovernor::new(&Default::default()).unwrap();
        takes(&g);
        let origin = Instant::now();
        let a = Now::read(origin);
        let b = Now::read(origin);
        assert!(b.mono_ns >= a.mono_ns && a.unix_ms > 1_700_000_000_000);
    }

    #[test]
    fn refusals_round_retry_after_up() {
        let r = Refusal {
            scope: Scope::Tenant,
            rule: Rule::Tokens,
            limit: 100,
            retry_after_ms: Some(1001),
            rate: None,
        };
        assert_eq!(r.retry_after_secs(), Some(2));
        assert_eq!(
            r.to_string(),
            "tenant token limit of 100 per minute reached; resets in 1.001s"
        );
        let never = Refusal {
            retry_after_ms: None,
            ..r
        };
        assert_eq!(never.retry_after_secs(), None);
        assert!(never.to_string().ends_with("larger than the limit"));
    }
}
