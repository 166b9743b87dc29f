//! `GET /admin/live` and `GET /admin/ready`: what an orchestrator or load balancer asks.
//!
//! **Live** means the process should not be restarted: every shard that has not finished
//! draining beat its heartbeat within `[server] liveness_timeout_ms` (see
//! [`crate::shard::heartbeat`]). A shard wedged in a blocking call or a busy loop fails it,
//! so does a shard that died (the process exits then anyway). Draining is alive.
//!
//! **Ready** means send traffic here: the listeners are bound and every shard serves (each
//! beat at least once, after adopting its listener, and all are live), a route table is
//! loaded, and the process is not draining. During a drain it answers 503 so a load
//! balancer stops sending new connections before the listeners close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::proxy::Lifecycle;
use crate::shard::{Heartbeats, Pulse};

/// The liveness and readiness checks over the shards' heartbeats and the lifecycle, shared
/// by the admin listener and the systemd watchdog so both judge the same way.
#[derive(Clone, Debug)]
pub struct Probes {
    heartbeats: Arc<Heartbeats>,
    lifecycle: Arc<Lifecycle>,
    timeout: Duration,
}

impl Probes {
    /// Checks over these heartbeats, with `timeout` as the longest silence a live shard may
    /// keep.
    pub fn new(heartbeats: Arc<Heartbeats>, lifecycle: Arc<Lifecycle>, timeout: Duration) -> Self {
        Self {
            heartbeats,
            lifecycle,
            timeout,
        }
    }

    /// The shards' heartbeats now.
    pub fn pulse(&self) -> Pulse {
        self.heartbeats.check(Instant::now(), self.timeout)
    }

    /// The longest silence a live shard may keep.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the process is draining.
    pub fn draining(&self) -> bool {
        self.lifecycle.is_draining()
    }

    /// The answer to `GET /admin/live`: status and JSON body.
    pub fn live(&self) -> (u16, Value) {
        live_answer(&self.pulse(), self.heartbeats.shards(), self.timeout)
    }

    /// The answer to `GET /admin/ready` while serving route table `table_version`.
    pub fn ready(&self, table_version: u64) -> (u16, Value) {
        ready_answer(
            &self.pulse(),
            self.draining(),
            self.heartbeats.shards(),
            table_version,
            self.timeout,
        )
    }
}

/// Why the shards are not all alive, for a 503 body and the watchdog's log.
pub fn pulse_problem(pulse: &Pulse, timeout: Duration) -> Option<String> {
    match pulse {
        Pulse::Alive { .. } => None,
        Pulse::Starting { shard } => Some(format!("shard {shard} has not started serving")),
        Pulse::Silent { shard, silent_for } => Some(format!(
            "shard {shard} missed its heartbeat for {} ms (liveness_timeout_ms = {})",
            silent_for.as_millis(),
            timeout.as_millis()
        )),
    }
}

fn live_answer(pulse: &Pulse, shards: usize, timeout: Duration) -> (u16, Value) {
    match (pulse, pulse_problem(pulse, timeout)) {
        (Pulse::Alive { slowest, stopped }, _) => (
            200,
            json!({
                "status": "live",
                "shards": shards,
                "stopped_shards": stopped,
                "slowest_heartbeat_ms": u64::try_from(slowest.as_millis()).unwrap_or(u64::MAX),
            }),
        ),
        (_, reason) => (503, json!({"status": "dead", "reason": reason})),
    }
}

fn ready_answer(
    pulse: &Pulse,
    draining: bool,
    shards: usize,
    table_version: u64,
    timeout: Duration,
) -> (u16, Value) {
    if draining {
        return (
            503,
            json!({"status": "not_ready", "reason": "draining: shutting down, finishing requests in flight"}),
        );
    }
    match pulse_problem(pulse, timeout) {
        Some(reason) => (503, json!({"status": "not_ready", "reason": reason})),
        None => (
            200,
            json!({"status": "ready", "shards": shards, "table_version": table_version}),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);
    const ALIVE: Pulse = Pulse::Alive {
        slowest: Duration::from_millis(40),
        stopped: 0,
    };

    #[test]
    fn live_when_every_shard_beats() {
        let (status, body) = live_answer(&ALIVE, 2, T);
        assert_eq!(status, 200);
        assert_eq!(body["status"], "live");
        assert_eq!(body["slowest_heartbeat_ms"], 40);
    }

    #[test]
    fn a_silent_shard_is_dead_and_named() {
        let pulse = Pulse::Silent {
            shard: 1,
            silent_for: Duration::from_millis(6100),
        };
        let (status, body) = live_answer(&pulse, 2, T);
        assert_eq!(status, 503);
        assert_eq!(
            body["reason"],
            "shard 1 missed its heartbeat for 6100 ms (liveness_timeout_ms = 5000)"
        );
        let (status, body) = ready_answer(&pulse, false, 2, 3, T);
        assert_eq!((status, body["status"].as_str()), (503, Some("not_ready")));
    }

    #[test]
    fn ready_unless_draining_or_starting() {
        let (status, body) = ready_answer(&ALIVE, false, 2, 7, T);
        assert_eq!(status, 200);
        assert_eq!(body["table_version"], 7);
        let (status, body) = ready_answer(&ALIVE, true, 2, 7, T);
        assert_eq!(status, 503);
        assert!(body["reason"].as_str().unwrap().starts_with("draining"));
        let (status, body) = ready_answer(&Pulse::Starting { shard: 0 }, false, 2, 7, T);
        assert_eq!(status, 503);
        assert_eq!(body["reason"], "shard 0 has not started serving");
    }

    #[test]
    fn draining_is_still_live() {
        let hb = Heartbeats::new(1);
        hb.beat_at(0, Instant::now());
        let lifecycle = Arc::new(Lifecycle::new());
        lifecycle.begin_drain();
        let probes = Probes::new(hb, lifecycle, T);
        assert_eq!(probes.live().0, 200);
        assert_eq!(probes.ready(1).0, 503);
    }
}
