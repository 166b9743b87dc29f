//! Zero-downtime upgrade: on SIGUSR2 (or `infergate upgrade`) the serving process starts the
//! binary now at the path it was started from, hands it every listening socket (one per shard
//! and the admin one) as inherited descriptors, waits until the new process says it serves,
//! and then drains and exits. The new process accepts on the same sockets from its first
//! moment, so no connection is refused or reset; a new process that fails to start or is not
//! ready in time is killed, and the old one serves on.
//!
//! - [`launch`]: how this process was started (captured first thing in `main`);
//! - [`inherit`]: the new process's side: inherited sockets (also from systemd socket
//!   activation) and the readiness pipe;
//! - [`handoff`]: the old process's side: start, pass, wait;
//! - [`pidfile`]: `[server] pidfile`, so `infergate upgrade --pidfile` finds the process;
//! - [`cli`]: `infergate upgrade`.

pub mod cli;
pub mod handoff;
pub mod inherit;
pub mod launch;
pub mod pidfile;

pub use handoff::{UpgradeError, Upgrader};
pub use inherit::{Inherited, Role};
pub use launch::Launch;
pub use pidfile::Pidfile;
