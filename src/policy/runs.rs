//! Agent runs: the calls that carry the same run id, held to the run's rules (steps, spend,
//! wall time, concurrency, loops) and stoppable by an operator.
//!
//! A run is created by its first call and lives in the process-wide [`RunRegistry`],
//! scoped by its owner (the tenant, else the key) so two tenants' run ids never meet. A call
//! holds a [`RunTicket`] from admission to its end; a kill sets the run's flag and wakes
//! every call in flight, whose streams then end with an error event.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use event_listener::{Event, EventListener};
use serde::Serialize;

use super::budget::usd_to_micros;
use super::governor::Now;
use super::local::RunBudget;
use crate::config::{ConfigError, RunsConfig};

/// Longest run id kept (a longer one is refused: ids come from clients).
pub const MAX_RUN_ID: usize = 128;
/// Most runs tracked at once; beyond it, runs idle for a minute are dropped first.
const MAX_RUNS: usize = 100_000;

/// A key's run rules (its own over its tenant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RunRules {
    /// Most calls.
    pub max_steps: Option<u64>,
    /// Most spend, micro-dollars.
    pub max_usd_micros: Option<u64>,
    /// Longest run, milliseconds from its first call.
    pub max_wall_ms: Option<u64>,
    /// Most calls in flight.
    pub max_concurrency: Option<u64>,
    /// Same tool call (or request) this many times in a row stops the run.
    pub loop_repeat: Option<u32>,
}

impl RunRules {
    /// The rules from a key's and its tenant's `runs` (field by field, the key's win);
    /// `None` when neither has any.
    pub fn compile(
        name: &str,
        key: Option<&RunsConfig>,
        tenant: Option<&RunsConfig>,
    ) -> Result<Option<Self>, ConfigError> {
        if key.is_none() && tenant.is_none() {
            return Ok(None);
        }
        let pick =
            |f: fn(&RunsConfig) -> Option<u64>| key.and_then(f).or_else(|| tenant.and_then(f));
        let usd = key
            .and_then(|k| k.max_usd)
            .or_else(|| tenant.and_then(|t| t.max_usd));
        let max_usd_micros = match usd {
            Some(u) => Some(usd_to_micros(u).ok().filter(|m| *m > 0).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "key {name:?}: runs.max_usd = {u} must be a positive amount"
                ))
            })?),
            None => None,
        };
        let loop_repeat = key
            .and_then(|k| k.loop_repeat)
            .or_else(|| tenant.and_then(|t| t.loop_repeat));
        if loop_repeat.is_some_and(|n| n < 2) {
            return Err(ConfigError::Invalid(format!(
                "key {name:?}: runs.loop_repeat must be at least 2"
            )));
        }
        Ok(Some(Self {
            max_steps: pick(|r| r.max_steps),
            max_usd_micros,
            max_wall_ms: pick(|r| r.max_wall_s).map(|s| s.saturating_mul(1000)),
            max_concurrency: pick(|r| r.max_concurrency),
            loop_repeat,
        }))
    }
}

/// Why a run refuses a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunRefusal {
    /// An operator killed the run.
    #[error("run {0:?} was killed by an operator")]
    Killed(String),
    /// The run stopped earlier (loop detected); it takes no more calls.
    #[error("run {0:?} was stopped: {1}")]
    Stopped(String, &'static str),
    /// `max_steps` reached.
    #[error("run step limit of {0} reached")]
    Steps(u64),
    /// `max_wall_s` passed.
    #[error("run time limit of {0}s passed")]
    Wall(u64),
    /// `max_concurrency` calls already in flight.
    #[error("run concurrency limit of {0} reached")]
    Concurrency(u64),
    /// The same tool call or request came `loop_repeat` times in a row.
    #[error("run loop detected: the same {what} {times} times in a row")]
    Loop {
        /// `tool call` or `request`.
        what: &'static str,
        /// How many times.
        times: u32,
    },
    /// The id is empty, too long or not printable ASCII.
    #[error("run id must be 1 to 128 printable ASCII characters")]
    BadId,
}

/// What a call repeats, for loop detection: its last assistant tool calls and its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// The last assistant turn's tool calls (names and arguments), if it made any.
    pub tool_call: Option<u64>,
    /// The whole request.
    pub request: u64,
}

impl Fingerprint {
    /// Reads the last assistant turn's tool calls in any dialect: Chat `tool_calls`,
    /// Messages `tool_use` blocks, Responses `function_call` items.
    pub fn of(body: &[u8]) -> Self {
        let request = hash_of(&body);
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let turns = v
            .get("messages")
            .or_else(|| v.get("input"))
            .and_then(|m| m.as_array());
        let tool_call = turns
            .and_then(|t| last_tool_calls(t))
            .map(|calls| hash_of(&calls));
        Self { tool_call, request }
    }
}

fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// `name(arguments)` of each tool call in the last assistant turn, canonical JSON.
fn last_tool_calls(turns: &[serde_json::Value]) -> Option<String> {
    let mut calls = String::new();
    for turn in turns.iter().rev() {
        // Responses: function_call items (consecutive at the end of the input).
        if turn.get("type").and_then(|t| t.as_str()) == Some("function_call") {
            push_call(&mut calls, turn.get("name"), turn.get("arguments"));
            continue;
        }
        if !calls.is_empty() {
            break;
        }
        if turn.get("role").and_then(|r| r.as_str()) != Some("assistant") {
            continue;
        }
        for c in turn
            .get("tool_calls")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let f = c.get("function");
            push_call(
                &mut calls,
                f.and_then(|f| f.get("name")),
                f.and_then(|f| f.get("arguments")),
            );
        }
        let blocks = turn.get("content").and_then(|c| c.as_array());
        for b in blocks.into_iter().flatten() {
            if b.get("type").and_then(|t| t.as_str()) == Some("tool_use") {
                push_call(&mut calls, b.get("name"), b.get("input"));
            }
        }
        break;
    }
    (!calls.is_empty()).then_some(calls)
}

fn push_call(out: &mut String, name: Option<&serde_json::Value>, args: Option<&serde_json::Value>) {
    // Arguments arrive as a JSON string (OpenAI) or an object (Anthropic): compare parsed.
    let args = match args {
        Some(serde_json::Value::String(s)) => {
            serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.clone()))
        }
        Some(v) => v.clone(),
        None => serde_json::Value::Null,
    };
    out.push_str(name.and_then(|n| n.as_str()).unwrap_or(""));
    out.push('(');
    out.push_str(&args.to_string());
    out.push_str(");");
}

/// One agent run's counters and state.
#[derive(Debug)]
pub struct RunState {
    /// The run id as the client sent it.
    pub id: String,
    /// The tenant (else the key) the run belongs to.
    pub owner: String,
    started_ms: u64,
    last_ms: AtomicU64,
    steps: AtomicU64,
    inflight: AtomicU64,
    tokens: AtomicU64,
    spent: AtomicU64,
    refused: AtomicU64,
    killed: AtomicBool,
    stopped: AtomicBool,
    kill: Event,
    last_call: AtomicU64,
    call_repeats: AtomicU32,
    last_request: AtomicU64,
    request_repeats: AtomicU32,
    /// The run's own spend cap.
    pub budget: Option<RunBudget>,
    rules: Option<RunRules>,
}

/// What `GET /admin/runs/{id}` shows of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Run id.
    pub id: String,
    /// Tenant or key.
    pub owner: String,
    /// `active`, `killed` or `stopped`.
    pub state: &'static str,
    /// Calls admitted.
    pub calls: u64,
    /// Calls in flight.
    pub in_flight: u64,
    /// Calls refused by the run's rules.
    pub refused: u64,
    /// Tokens used.
    pub tokens: u64,
    /// Spend in US dollars.
    pub spent_usd: f64,
    /// Unix milliseconds of the first call.
    pub started_ms: u64,
    /// Milliseconds from the first to the latest call.
    pub wall_ms: u64,
    /// The rules it is held to.
    pub rules: Option<RunRules>,
}

impl RunState {
    fn new(id: &str, owner: &str, rules: Option<RunRules>, now_ms: u64, killed: bool) -> Self {
        Self {
            id: id.to_string(),
            owner: owner.to_string(),
            started_ms: now_ms,
            last_ms: AtomicU64::new(now_ms),
            steps: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            spent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            killed: AtomicBool::new(killed),
            stopped: AtomicBool::new(false),
            kill: Event::new(),
            last_call: AtomicU64::new(0),
            call_repeats: AtomicU32::new(0),
            last_request: AtomicU64::new(0),
            request_repeats: AtomicU32::new(0),
            budget: rules.and_then(|r| r.max_usd_micros).map(RunBudget::new),
            rules,
        }
    }

    /// Whether an operator killed the run.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once the run is killed (create it before checking [`Self::is_killed`]).
    pub fn killed_signal(&self) -> EventListener {
        self.kill.listen()
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify(usize::MAX);
    }

    /// The run as the admin API shows it.
    pub fn view(&self) -> RunView {
        let state = if self.is_killed() {
            "killed"
        } else if self.stopped.load(Ordering::Acquire) {
            "stopped"
        } else {
            "active"
        };
        let last = self.last_ms.load(Ordering::Relaxed);
        RunView {
            id: self.id.clone(),
            owner: self.owner.clone(),
            state,
            calls: self.steps.load(Ordering::Relaxed),
            in_flight: self.inflight.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
            spent_usd: self.spent.load(Ordering::Relaxed) as f64 / 1e6,
            started_ms: self.started_ms,
            wall_ms: last.saturating_sub(self.started_ms),
            rules: self.rules,
        }
    }

    /// Admits one call: not killed or stopped, within steps, wall time and concurrency, and
    /// not the `loop_repeat`-th repeat of the same tool call or request.
    fn begin(self: &Arc<Self>, fp: Fingerprint, now_ms: u64) -> Result<RunTicket, RunRefusal> {
        let refuse = |r: RunRefusal| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(r)
        };
        // Listening before the check: a kill after it still wakes this call.
        let signal = self.killed_signal();
        if self.is_killed() {
            return refuse(RunRefusal::Killed(self.id.clone()));
        }
        if self.stopped.load(Ordering::Acquire) {
            return refuse(RunRefusal::Stopped(self.id.clone(), "a loop was detected"));
        }
        self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
        let rules = self.rules.unwrap_or_default();
        if let Some(max) = rules.max_wall_ms {
            if now_ms.saturating_sub(self.started_ms) > max {
                return refuse(RunRefusal::Wall(max / 1000));
            }
        }
        if let Some(n) = rules.loop_repeat {
            if let Some(what) = self.repeats(fp, n) {
                self.stopped.store(true, Ordering::Release);
                return refuse(RunRefusal::Loop { what, times: n });
            }
        }
        let steps = self.steps.fetch_add(1, Ordering::AcqRel);
        if rules.max_steps.is_some_and(|max| steps >= max) {
            self.steps.fetch_sub(1, Ordering::AcqRel);
            return refuse(RunRefusal::Steps(steps));
        }
        let inflight = self.inflight.fetch_add(1, Ordering::AcqRel);
        if let Some(max) = rules.max_concurrency.filter(|max| inflight >= *max) {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            self.steps.fetch_sub(1, Ordering::AcqRel);
            return refuse(RunRefusal::Concurrency(max));
        }
        Ok(RunTicket {
            run: Arc::clone(self),
            signal: Some(signal),
        })
    }

    /// Counts consecutive repeats; `Some(what)` when one reaches `n`.
    fn repeats(&self, fp: Fingerprint, n: u32) -> Option<&'static str> {
        let bump = |last: &AtomicU64, count: &AtomicU32, h: u64| {
            if last.swap(h, Ordering::AcqRel) == h {
                count.fetch_add(1, Ordering::AcqRel).saturating_add(1)
            } else {
                count.store(1, Ordering::Release);
                1
            }
        };
        let calls = match fp.tool_call {
            Some(h) => bump(&self.last_call, &self.call_repeats, h),
            None => {
                self.last_call.store(0, Ordering::Release);
                self.call_repeats.store(0, Ordering::Release);
                0
            }
        };
        let requests = bump(&self.last_request, &self.request_repeats, fp.request);
        if calls >= n {
            Some("tool call")
        } else if requests >= n {
            Some("request")
        } else {
            None
        }
    }
}

/// One call's place in its run, from admission to its end (dropping it ends the call).
#[derive(Debug)]
pub struct RunTicket {
    run: Arc<RunState>,
    /// Resolves when the run is killed: whoever waits on the call (the attempt, the relay)
    /// cuts it then.
    pub signal: Option<EventListener>,
}

impl RunTicket {
    /// The run.
    pub fn run(&self) -> &Arc<RunState> {
        &self.run
    }

    /// Adds what the call used to the run's totals.
    pub fn used(&self, tokens: u64, cost_micros: u64) {
        self.run.tokens.fetch_add(tokens, Ordering::Relaxed);
        self.run.spent.fetch_add(cost_micros, Ordering::Relaxed);
    }
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        self.run.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every run the process knows, and the ids an operator killed.
#[derive(Debug, Default)]
pub struct RunRegistry {
    runs: papaya::HashMap<(String, String), Arc<RunState>>,
    killed: papaya::HashSet<String>,
}

impl RunRegistry {
    /// Admits a call to run `id` of `owner` (creating the run with `rules` on its first call).
    pub fn begin(
        &self,
        owner: &str,
        id: &str,
        rules: Option<RunRules>,
        fp: Fingerprint,
        now: Now,
    ) -> Result<RunTicket, RunRefusal> {
        if id.is_empty() || id.len() > MAX_RUN_ID || !id.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(RunRefusal::BadId);
        }
        let runs = self.runs.pin();
        let key = (owner.to_string(), id.to_string());
        let run = match runs.get(&key) {
            Some(r) => Arc::clone(r),
            None => {
                if runs.len() >= MAX_RUNS {
                    self.prune(now.unix_ms, 60_000);
                }
                let killed = self.killed.pin().contains(id);
                let fresh = Arc::new(RunState::new(id, owner, rules, now.unix_ms, killed));
                Arc::clone(runs.get_or_insert(key, fresh))
            }
        };
        run.begin(fp, now.unix_ms)
    }

    /// Kills every run with this id (and any later one): calls in flight are woken and
    /// cut, later calls refused. Returns how many runs were live.
    pub fn kill(&self, id: &str) -> usize {
        self.killed.pin().insert(id.to_string());
        let runs = self.runs.pin();
        let mut n = 0;
        for (_, run) in runs.iter().filter(|((_, rid), _)| rid == id) {
            run.kill();
            n += 1;
        }
        n
    }

    /// Marks ids killed before this process started (from the store).
    pub fn restore_killed(&self, ids: impl IntoIterator<Item = String>) {
        let killed = self.killed.pin();
        for id in ids {
            killed.insert(id);
        }
    }

    /// The runs with this id, by owner.
    pub fn views(&self, id: &str) -> BTreeMap<String, RunView> {
        self.runs
            .pin()
            .iter()
            .filter(|((_, rid), _)| rid == id)
            .map(|((owner, _), run)| (owner.clone(), run.view()))
            .collect()
    }

    /// Whether the id was killed.
    pub fn is_killed(&self, id: &str) -> bool {
        self.killed.pin().contains(id)
    }

    /// Drops runs with nothing in flight and no call for `idle_ms`.
    pub fn prune(&self, now_ms: u64, idle_ms: u64) {
        self.runs.pin().retain(|_, run| {
            run.inflight.load(Ordering::Acquire) > 0
                || now_ms.saturating_sub(run.last_ms.load(Ordering::Relaxed)) < idle_ms
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Now = Now {
        mono_ns: 0,
        unix_ms: 1_795_435_200_000,
    };

    fn rules(f: impl FnOnce(&mut RunRules)) -> Option<RunRules> {
        let mut r = RunRules::default();
        f(&mut r);
        Some(r)
    }

    fn call(tool_args: &str) -> Fingerprint {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"go"}},{{"role":"assistant","tool_calls":[{{"id":"c1","type":"function","function":{{"name":"search","arguments":"{tool_args}"}}}}]}},{{"role":"tool","tool_call_id":"c1","content":"nothing"}}]}}"#
        );
        Fingerprint::of(body.as_bytes())
    }

    #[test]
    fn the_same_tool_call_in_a_row_stops_the_run_at_loop_repeat() {
        let reg = RunRegistry::default();
        let r = rules(|r| r.loop_repeat = Some(3));
        let a = call("{\\\"q\\\":\\\"x\\\"}");
        // The same arguments in another spelling are the same call.
        let a_spaced = call("{ \\\"q\\\" : \\\"x\\\" }");
        assert_eq!(a.tool_call, a_spaced.tool_call);
        let b = call("{\\\"q\\\":\\\"y\\\"}");
        for fp in [a, b, a, a_spaced] {
            drop(reg.begin("acme", "run-1", r, fp, NOW).unwrap());
        }
        let refused = reg.begin("acme", "run-1", r, a, NOW).unwrap_err();
        assert_eq!(
            refused,
            RunRefusal::Loop {
                what: "tool call",
                times: 3
            }
        );
        // Stopped: even a different call is refused now.
        assert!(matches!(
            reg.begin("acme", "run-1", r, b, NOW),
            Err(RunRefusal::Stopped(..))
        ));
        // Another tenant's run with the same id is its own.
        assert!(reg.begin("other", "run-1", r, a, NOW).is_ok());
        assert_eq!(reg.views("run-1")["acme"].state, "stopped");
    }

    #[test]
    fn tool_calls_are_read_in_every_dialect() {
        let messages = br#"{"messages":[{"role":"assistant","content":[{"type":"text","text":"hm"},{"type":"tool_use","id":"t","name":"search","input":{"q":"x"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}]}"#;
        let responses = br#"{"input":[{"role":"user","content":"go"},{"type":"function_call","call_id":"c","name":"search","arguments":"{\"q\":\"x\"}"},{"type":"function_call_output","call_id":"c","output":"r"}]}"#;
        let chat = call("{\\\"q\\\":\\\"x\\\"}");
        assert!(chat.tool_call.is_some());
        assert_eq!(Fingerprint::of(messages).tool_call, chat.tool_call);
        assert_eq!(Fingerprint::of(responses).tool_call, chat.tool_call);
        assert_eq!(
            Fingerprint::of(br#"{"messages":[{"role":"user","content":"hi"}]}"#).tool_call,
            None
        );
    }

    #[test]
    fn steps_wall_time_and_concurrency() {
        let reg = RunRegistry::default();
        let r = rules(|r| {
            r.max_steps = Some(3);
            r.max_concurrency = Some(2);
            r.max_wall_ms = Some(60_000);
        });
        let fp = |n: u64| Fingerprint {
            tool_call: None,
            request: n,
        };
        let t1 = reg.begin("k", "r", r, fp(1), NOW).unwrap();
        let t2 = reg.begin("k", "r", r, fp(2), NOW).unwrap();
        assert_eq!(
            reg.begin("k", "r", r, fp(3), NOW).unwrap_err(),
            RunRefusal::Concurrency(2)
        );
        drop(t1);
        let t3 = reg.begin("k", "r", r, fp(4), NOW).unwrap();
        drop((t2, t3));
        assert_eq!(
            reg.begin("k", "r", r, fp(5), NOW).unwrap_err(),
            RunRefusal::Steps(3)
        );
        let later = Now {
            unix_ms: NOW.unix_ms + 61_000,
            ..NOW
        };
        assert_eq!(reg.begin("k", "r2", r, fp(1), NOW).map(drop), Ok(()));
        assert_eq!(
            reg.begin("k", "r2", r, fp(2), later).unwrap_err(),
            RunRefusal::Wall(60)
        );
        let v = &reg.views("r")["k"];
        assert_eq!((v.calls, v.in_flight, v.refused), (3, 0, 2));
        assert_eq!(
            reg.begin("k", "", r, fp(1), NOW).unwrap_err(),
            RunRefusal::BadId
        );
        assert_eq!(
            reg.begin("k", "a b", r, fp(1), NOW).unwrap_err(),
            RunRefusal::BadId
        );
    }

    #[test]
    fn a_kill_wakes_calls_in_flight_and_refuses_later_ones() {
        let reg = RunRegistry::default();
        let t = reg
            .begin("k", "r", None, Fingerprint::default(), NOW)
            .unwrap();
        let signal = t.run().killed_signal();
        assert_eq!(reg.kill("r"), 1);
        futures_executor::block_on(signal);
        assert!(t.run().is_killed());
        assert!(matches!(
            reg.begin("k", "r", None, Fingerprint::default(), NOW),
            Err(RunRefusal::Killed(_))
        ));
        // An id killed before its first call (or before a restart) is refused too.
        reg.restore_killed(["old".to_string()]);
        assert!(matches!(
            reg.begin("k", "old", None, Fingerprint::default(), NOW),
            Err(RunRefusal::Killed(_))
        ));
    }

    #[test]
    fn rules_merge_the_keys_over_the_tenants() {
        let tenant = RunsConfig {
            max_steps: Some(10),
            max_usd: Some(1.0),
            ..RunsConfig::default()
        };
        let key = RunsConfig {
            max_steps: Some(5),
            loop_repeat: Some(3),
            ..RunsConfig::default()
        };
        let r = RunRules::compile("k", Some(&key), Some(&tenant))
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.max_steps, r.max_usd_micros, r.loop_repeat),
            (Some(5), Some(1_000_000), Some(3))
        );
        assert_eq!(RunRules::compile("k", None, None).unwrap(), None);
        let bad = RunsConfig {
            loop_repeat: Some(1),
            ..RunsConfig::default()
        };
        assert!(RunRules::compile("k", Some(&bad), None).is_err());
    }
}
