//! Running as a service on an edge node: the liveness and readiness probes the admin
//! listener serves (`/admin/live`, `/admin/ready`), and systemd's readiness, watchdog and
//! stopping notifications, both judged by the shards' heartbeats.

mod notify;
mod probes;

pub use notify::{announce_ready, send_to, watchdog_interval, Note, Schedule};
pub use probes::{pulse_problem, Probes};
