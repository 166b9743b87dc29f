//! `ConfigReloader`: reads the config file, compiles a new `RouteTable`, installs its
//! providers' links in the upstream registry, and swaps the table in. An invalid file is
//! refused with the reason; the table that serves stays in place.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, ConfigError};
use crate::policy::{LocalGovernor, Store};
use crate::route::{RouteState, RouteTable, SharedRouteTable};
use crate::upstream::UpstreamRegistry;

/// Reloads one config file into the shared table. Reloads are serialized by a mutex that
/// only the control threads take; shards never touch it.
pub struct ConfigReloader {
    path: PathBuf,
    table: SharedRouteTable,
    upstreams: Arc<UpstreamRegistry>,
    governor: Arc<LocalGovernor>,
    store: Arc<Store>,
    serial: Mutex<Option<SystemTime>>,
}

impl ConfigReloader {
    /// A reloader for `path` feeding `table`, the `upstreams` its providers are reached by
    /// and the `governor` that enforces its keys' and tenants' rules.
    pub fn new(
        path: PathBuf,
        table: SharedRouteTable,
        upstreams: Arc<UpstreamRegistry>,
        governor: Arc<LocalGovernor>,
        store: Arc<Store>,
    ) -> Arc<Self> {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Arc::new(Self {
            path,
            table,
            upstreams,
            governor,
            store,
            serial: Mutex::new(mtime),
        })
    }

    /// Compiles a table from a config, installs its providers' links (credentials, TLS
    /// clients, resolved hosts) in `upstreams` and its keys' and tenants' rules in
    /// `governor` (counters of unchanged rules carry over): blocking, call it off the
    /// shards, before the table is served.
    pub fn compile(
        cfg: &Config,
        upstreams: &UpstreamRegistry,
        governor: &LocalGovernor,
        store: &Store,
    ) -> Result<RouteTable, ConfigError> {
        Self::compile_in(cfg, upstreams, governor, store, RouteState::new())
    }

    /// [`compile`](Self::compile) on the [`RouteState`] of the table being served, so
    /// providers' attempts in flight and the targets' health carry over to the new table.
    fn compile_next(&self, cfg: &Config) -> Result<RouteTable, ConfigError> {
        let state = Arc::clone(&self.table.load().state);
        Self::compile_in(cfg, &self.upstreams, &self.governor, &self.store, state)
    }

    fn compile_in(
        cfg: &Config,
        upstreams: &UpstreamRegistry,
        governor: &LocalGovernor,
        store: &Store,
        state: Arc<RouteState>,
    ) -> Result<RouteTable, ConfigError> {
        let table = RouteTable::compile_in(&with_stored(cfg, store)?, state)?;
        upstreams.install(&table)?;
        governor
            .replace(&table.governance.rules)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(table)
    }

    /// The registry the tables' providers are reached by.
    pub fn upstreams(&self) -> &UpstreamRegistry {
        &self.upstreams
    }

    /// Reloads now. Returns the new table version, or why the file was refused.
    pub fn reload(&self, why: &str) -> Result<u64, ConfigError> {
        let mut last = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        *last = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let result = Config::load(&self.path).and_then(|cfg| {
            let old = self.table.load();
            if cfg.server.listen != old.server.listen || cfg.server.shards != old.server.shards {
                tracing::warn!("server.listen and server.shards only change on restart");
            }
            crate::observe::trace::note_reload(&cfg.otel);
            self.compile_next(&cfg)
        });
        match result {
            Ok(table) => {
                let version = table.version;
                self.table.store(Arc::new(table));
                tracing::info!(version, trigger = why, "route table reloaded");
                Ok(version)
            }
            Err(e) => {
                tracing::error!(trigger = why, error = %e, "config refused; the previous table keeps serving");
                Err(e)
            }
        }
    }

    /// Changes run-time governance (the admin API): `check` applies the change to the
    /// config as it would compile (file plus store), which must compile; only then does
    /// `commit` write the store, and the table is rebuilt from file and store and swapped
    /// in, so the change holds on every shard from the next request.
    pub fn change<T>(
        &self,
        why: &str,
        check: impl FnOnce(&mut Config),
        commit: impl FnOnce(&Store) -> Result<T, ChangeError>,
    ) -> Result<T, ChangeError> {
        let _serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        let cfg = Config::load(&self.path)?;
        let mut candidate = with_stored(&cfg, &self.store)?;
        check(&mut candidate);
        RouteTable::compile(&candidate)?;
        let out = commit(&self.store)?;
        let table = self.compile_next(&cfg)?;
        let version = table.version;
        self.table.store(Arc::new(table));
        tracing::info!(version, trigger = why, "route table rebuilt");
        Ok(out)
    }

    /// The store of run-time keys, tenants, spend and killed runs.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reloads when the file's modification time changed since the last reload.
    pub fn reload_if_changed(&self) {
        let now = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let changed = {
            let last = self.serial.lock().unwrap_or_else(|p| p.into_inner());
            now.is_some() && now != *last
        };
        if changed {
            let _ = self.reload("file change");
        }
    }

    /// The table being served.
    pub fn table(&self) -> &SharedRouteTable {
        &self.table
    }
}

/// Why an admin change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The change would leave a config that does not compile (the reason says why).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store refused it (a duplicate name, a full disk).
    #[error(transparent)]
    Store(#[from] crate::policy::StoreError),
    /// The named key or tenant is not one the store holds.
    #[error("{0}")]
    NotFound(String),
}

/// The config with the store's run-time tenants and keys added (the file's win a name).
pub fn with_stored(cfg: &Config, store: &Store) -> Result<Config, ConfigError> {
    let stored_err = |e: crate::policy::StoreError| ConfigError::Invalid(e.to_string());
    let mut merged = cfg.clone();
    for (name, t) in store.tenants().map_err(stored_err)? {
        if merged.tenants.contains_key(&name) {
            tracing::warn!(tenant = %name, "a run-time tenant has the name of one in the config file; the file's is used");
            continue;
        }
        merged.tenants.insert(name, t.to_config());
    }
    for k in store.keys().map_err(stored_err)? {
        if merged.auth.keys.iter().any(|c| c.name == k.name) {
            tracing::warn!(key = %k.name, "a run-time key has the name of one in the config file; the file's is used");
            continue;
        }
        merged.auth.keys.push(k.to_config());
    }
    Ok(merged)
}
