//! `ConfigReloader`: reads the config file, compiles a new `RouteTable`, installs its
//! providers' links in the upstream registry, and swaps the table in. An invalid file is
//! refused with the reason; the table that serves stays in place.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, ConfigError};
use crate::policy::LocalGovernor;
use crate::route::{RouteTable, SharedRouteTable};
use crate::upstream::UpstreamRegistry;

/// Reloads one config file into the shared table. Reloads are serialized by a mutex that
/// only the control threads take; shards never touch it.
pub struct ConfigReloader {
    path: PathBuf,
    table: SharedRouteTable,
    upstreams: Arc<UpstreamRegistry>,
    governor: Arc<LocalGovernor>,
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
    ) -> Arc<Self> {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Arc::new(Self {
            path,
            table,
            upstreams,
            governor,
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
    ) -> Result<RouteTable, ConfigError> {
        let table = RouteTable::compile(cfg)?;
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
            Self::compile(&cfg, &self.upstreams, &self.governor)
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
