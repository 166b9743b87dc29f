//! What of governance outlives the process: the store is opened at start, the spend and
//! killed runs it holds are put back, and budget spend is written to it every second and
//! once more after the shards stopped. A crash loses at most the last second's spend.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::policy::{LocalGovernor, Scope, SpendRow, Store, StoreError};
use crate::proxy::Lifecycle;

/// How often budget spend is written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Runs with nothing in flight and no call for this long are forgotten (killed ids stay).
const RUN_IDLE_MS: u64 = 3_600_000;

/// Opens `[store]`'s file (absent section: in memory only, nothing persisted).
pub fn open_store(cfg: &Config) -> Result<Store, StoreError> {
    Store::open(cfg.store.as_ref().map_or("", |s| s.path.as_str()))
}

/// Puts persisted spend (current windows only) and killed run ids back.
pub fn restore(governor: &LocalGovernor, store: &Store) -> Result<(), StoreError> {
    let rows: Vec<(Scope, String, u64, u64)> = store
        .spend()?
        .into_iter()
        .filter_map(|r| {
            let scope = match r.scope.as_str() {
                "key" => Scope::Key,
                "tenant" => Scope::Tenant,
                _ => return None,
            };
            Some((scope, r.name, r.window, r.spent_micros))
        })
        .collect();
    governor.restore_spend(&rows, governor.now());
    governor.runs().restore_killed(store.killed_runs()?);
    Ok(())
}

/// Writes every budget's current spend to the store.
pub fn flush(governor: &LocalGovernor, store: &Store) -> Result<(), StoreError> {
    let rows: Vec<SpendRow> = governor
        .spend_rows()
        .into_iter()
        .map(|(scope, name, window, spent)| SpendRow {
            scope: scope.to_string(),
            name,
            window,
            spent_micros: spent,
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    store.save_spend(&rows)
}

/// Flushes spend every second (and forgets idle runs) until the drain begins.
pub fn spawn_flusher(
    governor: Arc<LocalGovernor>,
    store: Arc<Store>,
    lifecycle: Arc<Lifecycle>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("infergate-store".into())
        .spawn(move || {
            while !lifecycle.is_draining() {
                std::thread::sleep(FLUSH_EVERY);
                if let Err(e) = flush(&governor, &store) {
                    tracing::error!(error = %e, "budget spend could not be written to the store");
                }
                governor.runs().prune(governor.now().unix_ms, RUN_IDLE_MS);
            }
        })
}
