//! `ConfigReloader`: reads the config file, compiles a new `RouteTable`, and swaps it in.
//! An invalid file is refused with the reason; the table that serves stays in place.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, ConfigError};
use crate::route::{RouteTable, SharedRouteTable};

/// Reloads one config file into the shared table. Reloads are serialized by a mutex that
/// only the control threads take; shards never touch it.
pub struct ConfigReloader {
    path: PathBuf,
    table: SharedRouteTable,
    serial: Mutex<Option<SystemTime>>,
}

impl ConfigReloader {
    /// A reloader for `path` feeding `table`.
    pub fn new(path: PathBuf, table: SharedRouteTable) -> Arc<Self> {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Arc::new(Self {
            path,
            table,
            serial: Mutex::new(mtime),
        })
    }

    /// Compiles a table from a config and resolves its providers' hosts (blocking: call it
    /// off the shards).
    pub fn compile(cfg: &Config) -> Result<RouteTable, ConfigError> {
        let table = RouteTable::compile(cfg)?;
        for p in table.providers.values() {
            if p.addr.is_some() && p.unavailable.is_none() {
                if let Err(e) = p.refresh_addrs() {
                    tracing::warn!(provider = %p.name, error = %e, "cannot resolve provider host yet; will retry");
                }
            }
        }
        Ok(table)
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
            Self::compile(&cfg)
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
