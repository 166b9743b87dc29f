//! Admin: the control side of the gateway, off the data plane. Reloads (admin API, SIGHUP,
//! file change), signal handling, DNS refresh, and a small HTTP listener of its own.

mod access;
mod keys;
mod metrics;
mod persist;
mod reload;
mod requests;
mod server;
mod usage;
mod watch;

pub use access::{AdminAccess, AdminDenied};
pub use persist::{flush, open_store, restore, spawn_flusher};
pub use reload::{with_stored, ChangeError, ConfigReloader};
pub use server::{bind_admin_listener, start_admin_server, AdminInfo};
pub use watch::{spawn_signal_thread, spawn_watch_thread};
