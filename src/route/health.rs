//! What a shard has learned about each target from its own traffic: consecutive failures
//! (a target that keeps failing is ejected for a cooldown, then let back by one probe), a
//! provider's `429` with `retry-after` or rate-limit headers saying nothing is left (the
//! target is benched until then), and a peak-EWMA of time to first byte with the attempts
//! in flight (what latency-aware routing compares). Keyed by provider name and model, so it
//! survives route table swaps; each shard keeps its own (no lock, no shared atomics), which
//! means a target is ejected by each shard on the failures that shard saw. What a shard
//! knows is published to the [`HealthBoard`] for `/admin/health` and the metrics: at once
//! when a target's state changes, else by the shard's periodic [`RouteHealth::publish`].

use crate::FastMap;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::board::{BenchReason, HealthBoard, ShardHealthView, TargetSnapshot};
use crate::http::HeaderList;

/// How long a latency sample keeps half its weight in the average.
const EWMA_HALF_LIFE: Duration = Duration::from_secs(5);
/// Longest wait a provider's `retry-after` or reset header is believed for.
const MAX_BENCH: Duration = Duration::from_secs(600);
/// Most ejections in a row the cooldown doubles for (2^4 = 16 times the configured one).
const MAX_BACKOFF_DOUBLINGS: u32 = 4;
/// Most targets a shard keeps state for (more only after reloads that renamed many
/// targets: the state is then started afresh).
const MAX_TARGETS: usize = 4096;

/// When a target that keeps failing is taken out of rotation, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectPolicy {
    /// Failures in a row that eject a target (0: never ejected).
    pub consecutive_failures: u32,
    /// How long the first ejection lasts; each ejection in a row doubles it (at most 16x).
    pub cooldown: Duration,
}

impl Default for EjectPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Whether a target should be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Healthy as far as this shard knows.
    Ready,
    /// Its ejection is over: one request may try it, and its result decides.
    Probe,
    /// Ejected after failing too often, until then.
    Ejected(Instant),
    /// The provider said to come back later (429 `retry-after`, or no requests left
    /// until the rate limit resets), until then.
    Benched(Instant),
    /// Its provider has `max_concurrency` attempts in flight (decided by the plan from the
    /// provider's count, never by this shard's health).
    Full,
}

impl Availability {
    /// Whether a request should try it before the targets that are not available.
    pub fn is_available(self) -> bool {
        matches!(self, Availability::Ready | Availability::Probe)
    }

    /// A short reason for records and errors (`ejected`, `rate_limited`,
    /// `concurrency_limited`).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Availability::Ready | Availability::Probe => None,
            Availability::Ejected(_) => Some("ejected"),
            Availability::Benched(_) => Some("rate_limited"),
            Availability::Full => Some("concurrency_limited"),
        }
    }
}

/// How an attempt ended, as far as the target's health goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptResult {
    /// The provider answered (whatever the answer's content); its time to first byte.
    Answered(Duration),
    /// The provider answered 429; how long it asked to wait, if it said.
    RateLimited(Option<Duration>),
    /// Connect error, timeout, reset, 5xx: counts toward ejection.
    Failed,
    /// Ended for a reason that says nothing about the target (the client left, a run
    /// was killed).
    Neutral,
}

/// One target's state.
#[derive(Debug, Clone)]
struct TargetState {
    /// Peak-EWMA of time to first byte, in microseconds (0: no sample yet).
    ewma_us: f64,
    /// When `ewma_us` was last updated.
    updated: Instant,
    /// Attempts waiting for their first byte.
    in_flight: u32,
    /// Failures since the last answer.
    failures: u32,
    /// Ejections in a row (each doubles the cooldown).
    ejections: u32,
    ejected_until: Option<Instant>,
    /// A probe is on its way after an ejection.
    probing: bool,
    benched_until: Option<Instant>,
    /// Why it was last benched.
    bench_reason: Option<BenchReason>,
    /// Times ejected (for the metrics; kept while the shard keeps the target).
    ejected_total: u64,
    /// Times benched, by [`BenchReason::index`].
    benched_total: [u64; 2],
}

impl TargetState {
    fn new(now: Instant) -> Self {
        Self {
            ewma_us: 0.0,
            updated: now,
            in_flight: 0,
            failures: 0,
            ejections: 0,
            ejected_until: None,
            probing: false,
            benched_until: None,
            bench_reason: None,
            ejected_total: 0,
            benched_total: [0; 2],
        }
    }

    /// Benches the target until `until` for `reason`; a target not benched yet counts one
    /// more benching. Returns whether it was not benched before.
    fn bench(&mut self, until: Instant, reason: BenchReason, now: Instant) -> bool {
        let fresh = self.benched_until.is_none_or(|t| t <= now);
        if fresh {
            if let Some(n) = self.benched_total.get_mut(reason.index()) {
                *n = n.saturating_add(1);
            }
        }
        if fresh || self.benched_until.is_some_and(|t| until > t) {
            self.benched_until = Some(until);
            self.bench_reason = Some(reason);
        }
        fresh
    }

    fn snapshot(&self, provider: &str, model: &str) -> TargetSnapshot {
        TargetSnapshot {
            provider: provider.to_string(),
            model: model.to_string(),
            ewma_ttfb_us: self.ewma_us,
            waiting: self.in_flight,
            failures: self.failures,
            ejected_until: self.ejected_until,
            benched_until: self.benched_until,
            bench_reason: self.bench_reason,
            ejections: self.ejected_total,
            benched: self.benched_total,
        }
    }

    fn availability(&self, now: Instant) -> Availability {
        if let Some(until) = self.benched_until.filter(|&t| t > now) {
            return Availability::Benched(until);
        }
        match self.ejected_until {
            Some(until) if until > now => Availability::Ejected(until),
            // Over, but the probe has not come back: the others wait for it.
            Some(until) if self.probing => Availability::Ejected(until),
            Some(_) => Availability::Probe,
            None => Availability::Ready,
        }
    }

    /// Folds a time to first byte in: a slower sample is taken at once (peak), a faster
    /// one pulls the average down with a half-life of [`EWMA_HALF_LIFE`].
    fn sample(&mut self, ttfb: Duration, now: Instant) {
        let us = ttfb.as_secs_f64() * 1e6;
        if self.ewma_us == 0.0 || us > self.ewma_us {
            self.ewma_us = us;
        } else {
            let dt = now.saturating_duration_since(self.updated).as_secs_f64();
            let keep = 0.5f64.powf(dt / EWMA_HALF_LIFE.as_secs_f64()).min(0.95);
            self.ewma_us = keep * self.ewma_us + (1.0 - keep) * us;
        }
        self.updated = now;
    }
}

/// Every target's state on one shard. Interior mutability: a shard is one thread.
#[derive(Debug, Default)]
pub struct RouteHealth {
    targets: RefCell<FastMap<String, FastMap<String, TargetState>>>,
    /// Something changed since the last publish.
    dirty: Cell<bool>,
    /// A target's state changed (ejected, let back, benched, probed) since the last publish.
    changed: Cell<bool>,
}

/// When [`RouteHealth::publish`] publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Only when a target's state changed (called after each attempt).
    StateChanges,
    /// When anything changed (called every few hundred milliseconds).
    AnyChange,
}

impl RouteHealth {
    /// No target known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `provider`/`model` should be tried now.
    pub fn availability(&self, provider: &str, model: &str, now: Instant) -> Availability {
        self.targets
            .borrow()
            .get(provider)
            .and_then(|m| m.get(model))
            .map_or(Availability::Ready, |t| t.availability(now))
    }

    /// What latency-aware routing minimizes: the expected wait for a first byte, the
    /// average times the attempts that would be ahead of this one. 0 before any sample, so
    /// a new target gets tried; and the average fades with the time since the last sample
    /// (half-life [`EWMA_HALF_LIFE`]), so a target once slow is tried again after a while
    /// instead of never (its next answer sets the average anew).
    pub fn load_score(&self, provider: &str, model: &str, now: Instant) -> f64 {
        self.targets
            .borrow()
            .get(provider)
            .and_then(|m| m.get(model))
            .map_or(0.0, |t| {
                let idle = now.saturating_duration_since(t.updated).as_secs_f64();
                let fade = 0.5f64.powf(idle / EWMA_HALF_LIFE.as_secs_f64());
                t.ewma_us * fade * f64::from(t.in_flight + 1)
            })
    }

    /// An attempt at `provider`/`model` starts; a target due for its probe is now probing.
    pub fn begin(&self, provider: &str, model: &str, now: Instant) {
        let probe = self.with(provider, model, now, |t| {
            t.in_flight += 1;
            let probe = t.availability(now) == Availability::Probe;
            if probe {
                t.probing = true;
            }
            probe
        });
        if probe == Some(true) {
            self.changed.set(true);
        }
    }

    /// The attempt begun with [`begin`](Self::begin) ended so.
    pub fn end(
        &self,
        provider: &str,
        model: &str,
        result: AttemptResult,
        eject: EjectPolicy,
        now: Instant,
    ) {
        let changed = self.with(provider, model, now, |t| {
            t.in_flight = t.in_flight.saturating_sub(1);
            let was_probing = std::mem::take(&mut t.probing);
            match result {
                AttemptResult::Answered(ttfb) => {
                    t.sample(ttfb, now);
                    t.failures = 0;
                    t.ejections = 0;
                    t.ejected_until.take().is_some()
                }
                AttemptResult::RateLimited(wait) => {
                    // Not broken, only full: benched, not ejected.
                    let wait = wait.unwrap_or(Duration::from_secs(1)).min(MAX_BENCH);
                    t.bench(now + wait, BenchReason::Status429, now);
                    true
                }
                AttemptResult::Failed => {
                    t.failures = t.failures.saturating_add(1);
                    let threshold = eject.consecutive_failures;
                    if threshold > 0 && (was_probing || t.failures >= threshold) {
                        let doublings = t.ejections.min(MAX_BACKOFF_DOUBLINGS);
                        t.ejected_until = Some(now + eject.cooldown * (1u32 << doublings));
                        t.ejections = t.ejections.saturating_add(1);
                        t.ejected_total = t.ejected_total.saturating_add(1);
                        t.failures = 0;
                        true
                    } else {
                        was_probing
                    }
                }
                AttemptResult::Neutral => was_probing,
            }
        });
        if changed == Some(true) {
            self.changed.set(true);
        }
    }

    /// A provider's answer said no requests are left until a reset: benched until then.
    pub fn bench(&self, provider: &str, model: &str, wait: Duration, now: Instant) {
        let until = now + wait.min(MAX_BENCH);
        let fresh = self.with(provider, model, now, |t| {
            t.bench(until, BenchReason::RateLimitHeaders, now)
        });
        if fresh == Some(true) {
            self.changed.set(true);
        }
    }

    /// Publishes this shard's view of every target to `board` as shard `shard`, when
    /// `when` says there is something to publish. Allocates the view: called after state
    /// changes (rare) and every few hundred milliseconds, never for every request.
    pub fn publish(&self, board: &HealthBoard, shard: usize, when: Publish) {
        let due = match when {
            Publish::StateChanges => self.changed.get(),
            Publish::AnyChange => self.dirty.get(),
        };
        if !due {
            return;
        }
        self.changed.set(false);
        self.dirty.set(false);
        let targets = self.targets.borrow();
        let view = ShardHealthView {
            targets: targets
                .iter()
                .flat_map(|(p, models)| models.iter().map(move |(m, t)| t.snapshot(p, m)))
                .collect(),
        };
        board.publish(shard, view);
    }

    fn with<T>(
        &self,
        provider: &str,
        model: &str,
        now: Instant,
        f: impl FnOnce(&mut TargetState) -> T,
    ) -> Option<T> {
        self.dirty.set(true);
        let mut targets = self.targets.borrow_mut();
        if !targets.contains_key(provider) {
            if targets.values().map(FastMap::len).sum::<usize>() >= MAX_TARGETS {
                targets.clear();
            }
            targets.insert(provider.to_string(), FastMap::default());
        }
        let models = targets.get_mut(provider)?;
        if !models.contains_key(model) {
            models.insert(model.to_string(), TargetState::new(now));
        }
        models.get_mut(model).map(f)
    }
}

/// How long a provider's answer asks to wait before the next request: `retry-after-ms`,
/// `retry-after` in seconds (an HTTP date is not read: the default wait applies).
pub fn retry_after(headers: &HeaderList) -> Option<Duration> {
    if let Some(ms) = header_number(headers, "retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    header_number(headers, "retry-after").map(Duration::from_secs_f64)
}

/// When an answer's rate-limit headers say no requests (or tokens) are left, how long
/// until they reset: OpenAI's `x-ratelimit-remaining-requests: 0` with
/// `x-ratelimit-reset-requests: 6m0s` (likewise `-tokens`), Anthropic's
/// `anthropic-ratelimit-requests-remaining: 0` (its reset is a date: the default wait of one
/// second applies, and the next answer tells again).
pub fn exhausted_for(headers: &HeaderList) -> Option<Duration> {
    for kind in ["requests", "tokens"] {
        let remaining = format!("x-ratelimit-remaining-{kind}");
        if header_number(headers, &remaining) == Some(0.0) {
            let reset = format!("x-ratelimit-reset-{kind}");
            let wait = headers
                .get(&reset)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(parse_go_duration);
            return Some(wait.unwrap_or(Duration::from_secs(1)));
        }
        let remaining = format!("anthropic-ratelimit-{kind}-remaining");
        if header_number(headers, &remaining) == Some(0.0) {
            return Some(Duration::from_secs(1));
        }
    }
    None
}

/// A header's value as a non-negative finite number.
fn header_number(headers: &HeaderList, name: &str) -> Option<f64> {
    let v = std::str::from_utf8(headers.get(name)?).ok()?.trim();
    let n: f64 = v.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n)
}

/// A duration as OpenAI writes it in reset headers: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 {
        return None;
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let n: f64 = number.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            _ => return None,
        };
        total += n * scale;
        rest = next;
    }
    total.is_finite().then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EJECT: EjectPolicy = EjectPolicy {
        consecutive_failures: 3,
        cooldown: Duration::from_secs(10),
    };

    fn fail(h: &RouteHealth, now: Instant) {
        h.begin("p", "m", now);
        h.end("p", "m", AttemptResult::Failed, EJECT, now);
    }

    #[test]
    fn consecutive_failures_eject_then_one_probe_decides() {
        let h = RouteHealth::new();
        let t0 = Instant::now();
        fail(&h, t0);
        fail(&h, t0);
        assert_eq!(h.availability("p", "m", t0), Availability::Ready);
        fail(&h, t0);
        let until = t0 + Duration::from_secs(10);
        assert_eq!(h.availability("p", "m", t0), Availability::Ejected(until));
        // After the cooldown: one probe; the others wait while it is out.
        let t1 = until + Duration::from_millis(1);
        assert_eq!(h.availability("p", "m", t1), Availability::Probe);
        h.begin("p", "m", t1);
        assert!(!h.availability("p", "m", t1).is_available());
        // The probe fails: ejected again for twice as long.
        h.end("p", "m", AttemptResult::Failed, EJECT, t1);
        let again = t1 + Duration::from_secs(20);
        assert_eq!(h.availability("p", "m", t1), Availability::Ejected(again));
        // The next probe answers: healthy, and the cooldown starts over.
        let t2 = again + Duration::from_millis(1);
        h.begin("p", "m", t2);
        let ok = AttemptResult::Answered(Duration::from_millis(5));
        h.end("p", "m", ok, EJECT, t2);
        assert_eq!(h.availability("p", "m", t2), Availability::Ready);
        for _ in 0..3 {
            fail(&h, t2);
        }
        assert_eq!(
            h.availability("p", "m", t2),
            Availability::Ejected(t2 + Duration::from_secs(10))
        );
    }

    #[test]
    fn an_answer_between_failures_resets_the_count_and_zero_never_ejects() {
        let h = RouteHealth::new();
        let t0 = Instant::now();
        let ok = AttemptResult::Answered(Duration::from_millis(5));
        for _ in 0..10 {
            fail(&h, t0);
            fail(&h, t0);
            h.begin("p", "m", t0);
            h.end("p", "m", ok, EJECT, t0);
        }
        assert_eq!(h.availability("p", "m", t0), Availability::Ready);
        let never = EjectPolicy {
            consecutive_failures: 0,
            ..EJECT
        };
        for _ in 0..100 {
            h.begin("p", "m", t0);
            h.end("p", "m", AttemptResult::Failed, never, t0);
        }
        assert_eq!(h.availability("p", "m", t0), Availability::Ready);
    }

    #[test]
    fn a_429_benches_for_its_retry_after() {
        let h = RouteHealth::new();
        let t0 = Instant::now();
        h.begin("p", "m", t0);
        let limited = AttemptResult::RateLimited(Some(Duration::from_secs(7)));
        h.end("p", "m", limited, EJECT, t0);
        let until = t0 + Duration::from_secs(7);
        assert_eq!(h.availability("p", "m", t0), Availability::Benched(until));
        assert_eq!(h.availability("p", "m", until), Availability::Ready);
        // A provider asking for a day is believed for ten minutes.
        h.begin("p", "m", t0);
        let day = AttemptResult::RateLimited(Some(Duration::from_secs(86_400)));
        h.end("p", "m", day, EJECT, t0);
        assert_eq!(
            h.availability("p", "m", t0),
            Availability::Benched(t0 + MAX_BENCH)
        );
        // Other targets are not affected.
        assert_eq!(h.availability("p", "other", t0), Availability::Ready);
    }

    #[test]
    fn the_latency_score_follows_peaks_at_once_and_recoveries_slowly() {
        let h = RouteHealth::new();
        let t0 = Instant::now();
        assert_eq!(h.load_score("p", "m", t0), 0.0);
        let answer = |ms: u64, at: Instant| {
            h.begin("p", "m", at);
            let r = AttemptResult::Answered(Duration::from_millis(ms));
            h.end("p", "m", r, EJECT, at);
        };
        answer(10, t0);
        assert!((h.load_score("p", "m", t0) - 10_000.0).abs() < 1.0);
        let t1 = t0 + Duration::from_millis(10);
        answer(100, t1);
        assert!((h.load_score("p", "m", t1) - 100_000.0).abs() < 1.0);
        // One fast answer a second later pulls it down only part of the way.
        let t2 = t0 + Duration::from_secs(1);
        answer(10, t2);
        let s = h.load_score("p", "m", t2);
        assert!(s > 80_000.0 && s < 100_000.0, "{s}");
        // In-flight attempts multiply the expected wait.
        h.begin("p", "m", t2);
        assert!((h.load_score("p", "m", t2) - 2.0 * s).abs() < 1.0);
        // Without samples it fades: half after a half-life.
        let later = h.load_score("p", "m", t2 + EWMA_HALF_LIFE);
        assert!((later - s).abs() < 1.0, "{later} {s}");
    }

    #[test]
    fn state_changes_publish_at_once_and_the_rest_when_asked() {
        use crate::route::TargetState;
        let board = HealthBoard::default();
        let h = RouteHealth::new();
        let t0 = Instant::now();
        let key = ("p".to_string(), "m".to_string());
        // A failure short of ejection is not a change of state.
        fail(&h, t0);
        h.publish(&board, 3, Publish::StateChanges);
        assert!(board.targets(t0).is_empty());
        h.publish(&board, 3, Publish::AnyChange);
        assert_eq!(board.targets(t0)[&key].consecutive_failures, 1);
        // Nothing new: nothing published (the view stays).
        h.publish(&board, 3, Publish::AnyChange);
        // The ejection is published by the call after the attempt.
        fail(&h, t0);
        fail(&h, t0);
        h.publish(&board, 3, Publish::StateChanges);
        let seen = board.targets(t0)[&key];
        let until = t0 + Duration::from_secs(10);
        assert_eq!(seen.state, TargetState::Ejected(until));
        assert_eq!((seen.ejections, seen.shards[3]), (1, 1));
        // Its end needs no publish: the view holds the instant.
        assert_eq!(board.targets(until)[&key].state, TargetState::Probing);
        // A probe that answers lets it back: published at once.
        let t1 = until + Duration::from_millis(1);
        h.begin("p", "m", t1);
        let ok = AttemptResult::Answered(Duration::from_millis(4));
        h.end("p", "m", ok, EJECT, t1);
        h.publish(&board, 3, Publish::StateChanges);
        let seen = board.targets(t1)[&key];
        assert_eq!(seen.state, TargetState::Healthy);
        assert_eq!(seen.ewma_ttfb, Some(Duration::from_millis(4)));
        // Benchings count once per benching, by reason.
        h.begin("p", "m", t1);
        h.end("p", "m", AttemptResult::RateLimited(None), EJECT, t1);
        h.bench("p", "m", Duration::from_secs(5), t1);
        h.bench("q", "m", Duration::from_secs(5), t1);
        h.publish(&board, 3, Publish::StateChanges);
        let all = board.targets(t1);
        let p = all[&key];
        assert_eq!(p.benched, [1, 0], "already benched by the 429");
        assert_eq!(
            p.state,
            TargetState::Benched(t1 + Duration::from_secs(5), BenchReason::RateLimitHeaders)
        );
        assert_eq!(all[&("q".to_string(), "m".to_string())].benched, [0, 1]);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderList {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for (k, v) in pairs {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        crate::http::RequestHead::parse(text.as_bytes())
            .unwrap()
            .headers
    }

    #[test]
    fn rate_limit_headers_of_openai_and_anthropic_are_read() {
        let h = headers(&[("retry-after", "3")]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "3")]);
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&h), None);
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
        ]);
        assert_eq!(exhausted_for(&h), Some(Duration::from_secs(360)));
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ]);
        assert_eq!(exhausted_for(&h), Some(Duration::from_millis(20)));
        let h = headers(&[("anthropic-ratelimit-requests-remaining", "0")]);
        assert_eq!(exhausted_for(&h), Some(Duration::from_secs(1)));
        let h = headers(&[("x-ratelimit-remaining-requests", "99")]);
        assert_eq!(exhausted_for(&h), None);
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_go_duration("5 parsecs"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
