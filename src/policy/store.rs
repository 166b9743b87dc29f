//! The embedded SQLite store: governance state made at run time (keys and tenants created
//! through the admin API, budget spend, killed agent runs) survives a restart.
//!
//! Only control threads touch it (the admin API thread and a flush thread), never a shard,
//! so one connection behind a mutex is enough. Scalars are columns; lists and nested config
//! (models, limits, budget, metadata) are JSON text. Integers are `u64` in Rust and SQLite's
//! signed 64-bit integers on disk: a value that does not fit is an error, never wrapped.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};

use crate::config::{BudgetConfig, KeyConfig, LimitsConfig, TenantConfig};

/// `PRAGMA user_version` of the schema below; a file with a newer one is refused.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection to the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    name       TEXT PRIMARY KEY NOT NULL,
    sha256     TEXT NOT NULL,
    tenant     TEXT,
    models     TEXT,
    limits     TEXT NOT NULL,
    budget     TEXT,
    region     TEXT,
    metadata   TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE IF NOT EXISTS tenants (
    name     TEXT PRIMARY KEY NOT NULL,
    models   TEXT,
    limits   TEXT NOT NULL,
    budget   TEXT,
    region   TEXT,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    scope        TEXT NOT NULL,
    name         TEXT NOT NULL,
    window_id    INTEGER NOT NULL,
    spent_micros INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS killed_runs (
    run_id    TEXT PRIMARY KEY NOT NULL,
    killed_ms INTEGER NOT NULL
);
";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (cannot open the file, disk full, locked past the busy timeout, ...).
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A key or tenant with this name already exists (for keys: revoked ones too, so a
    /// name in old records always means one key).
    #[error("store: {0:?} already exists")]
    Duplicate(String),
    /// The key's `sha256` is not 64 hex digits: refused so a plaintext key handed over by
    /// mistake is never written (the value is left out of this error for the same reason).
    #[error("store: the sha256 of key {0:?} is not 64 hex digits")]
    NotAHash(String),
    /// A budget whose dollar amount is NaN or infinite cannot be written as JSON and read back.
    #[error("store: budget of {0} US dollars is not a finite number")]
    BadBudget(f64),
    /// A `u64` above `i64::MAX` does not fit SQLite's integers.
    #[error("store: {what} {value} is above the largest integer SQLite holds")]
    TooLarge {
        /// The column.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A stored integer is negative where a `u64` is expected (the file was edited by hand).
    #[error("store: stored {what} {value} is negative")]
    Negative {
        /// The column.
        what: &'static str,
        /// The value.
        value: i64,
    },
    /// A JSON column could not be written or read back.
    #[error("store: {what} column: {source}")]
    Json {
        /// The column.
        what: &'static str,
        /// The parse or write error.
        source: serde_json::Error,
    },
    /// The file was written by a newer infergate whose schema this build does not know.
    #[error("store: schema version {0} is newer than this build's {SCHEMA_VERSION}")]
    NewerSchema(i64),
}

/// A gateway key created at run time (the admin API): what the route table needs to
/// compile it, plus when it was created. The plaintext key is never here, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Who holds the key (unique, revoked keys included).
    pub name: String,
    /// Hex SHA-256 of the key the client sends.
    pub sha256: String,
    /// The tenant whose rules also apply.
    pub tenant: Option<String>,
    /// Model aliases the key may call (globs); absent: all.
    pub models: Option<Vec<String>>,
    /// The key's own requests and tokens per minute.
    pub limits: LimitsConfig,
    /// The key's own spend cap.
    pub budget: Option<BudgetConfig>,
    /// A region tag for the key's records.
    pub region: Option<String>,
    /// Free-form labels for the key's records.
    pub metadata: BTreeMap<String, String>,
    /// When the key was created (Unix ms); kept by [`Store::update_key`].
    pub created_ms: u64,
}

impl StoredKey {
    /// The key as the route table compiles it, the same as a key from the config file.
    pub fn to_config(&self) -> KeyConfig {
        KeyConfig {
            name: self.name.clone(),
            sha256: self.sha256.clone(),
            tenant: self.tenant.clone(),
            models: self.models.clone(),
            limits: self.limits,
            budget: self.budget.clone(),
            region: self.region.clone(),
            metadata: self.metadata.clone(),
            // Run rules come from the config file (a run-time key follows its tenant's).
            runs: None,
        }
    }
}

/// A tenant created at run time (the admin API); its name is stored beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTenant {
    /// Model aliases the tenant's keys may call (globs); absent: all.
    pub models: Option<Vec<String>>,
    /// Requests and tokens per minute over all of the tenant's keys.
    pub limits: LimitsConfig,
    /// The tenant's spend cap.
    pub budget: Option<BudgetConfig>,
    /// A region tag for the records.
    pub region: Option<String>,
    /// Free-form labels for the records.
    pub metadata: BTreeMap<String, String>,
}

impl StoredTenant {
    /// The tenant as the route table compiles it, the same as one from the config file.
    pub fn to_config(&self) -> TenantConfig {
        TenantConfig {
            models: self.models.clone(),
            limits: self.limits,
            budget: self.budget.clone(),
            region: self.region.clone(),
            metadata: self.metadata.clone(),
            runs: None,
            guardrails: Vec::new(),
        }
    }
}

/// Budget spend of one scope (`"key"`, `"tenant"`, `"run"`) and name in one window, so a
/// restart does not hand a spent budget its money back. One row per scope and name: only
/// the current window matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    /// `"key"`, `"tenant"` or `"run"`.
    pub scope: String,
    /// The key's, tenant's or run's name.
    pub name: String,
    /// [`crate::policy::Window::id`] of the window the spend belongs to.
    pub window: u64,
    /// Settled spend in that window, in micro-dollars.
    pub spent_micros: u64,
}

/// The store: one SQLite connection behind a std mutex. Only control threads use it (the
/// admin API thread and a flush thread), never a shard, so the lock is never contended on
/// the request path.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if missing) the SQLite file at `path`; `""` keeps everything in
    /// memory. Creates the tables, uses WAL for files (the admin API reads while the flush
    /// thread writes) and waits up to 5 s for a lock.
    pub fn open(path: &str) -> Result<Store, StoreError> {
        let mut conn = if path.is_empty() {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if !path.is_empty() {
            // journal_mode answers with the mode now in force; the answer is not needed.
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                row.get::<_, String>(0)
            })?;
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema(version));
        }
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// The connection. A thread that panicked while holding it left no open transaction
    /// (dropping one rolls it back), so a poisoned lock is still safe to use.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a run-time key; [`StoreError::Duplicate`] when the name exists, revoked or not.
    pub fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let cols = KeyColumns::new(key)?;
        let conn = self.conn();
        let added = conn
            .prepare_cached(
                "INSERT INTO keys (name, sha256, tenant, models, limits, budget, region, \
                 metadata, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![
                key.name,
                key.sha256,
                key.tenant,
                cols.profile.models,
                cols.profile.limits,
                cols.profile.budget,
                key.region,
                cols.profile.metadata,
                cols.created_ms,
            ])?;
        if added == 0 {
            return Err(StoreError::Duplicate(key.name.clone()));
        }
        Ok(())
    }

    /// Replaces everything but `created_ms` of the live key named `key.name`; `false` when
    /// there is none (never created, or revoked).
    pub fn update_key(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let cols = KeyColumns::new(key)?;
        let conn = self.conn();
        let changed = conn
            .prepare_cached(
                "UPDATE keys SET sha256 = ?2, tenant = ?3, models = ?4, limits = ?5, \
                 budget = ?6, region = ?7, metadata = ?8 \
                 WHERE name = ?1 AND revoked_ms IS NULL",
            )?
            .execute(params![
                key.name,
                key.sha256,
                key.tenant,
                cols.profile.models,
                cols.profile.limits,
                cols.profile.budget,
                key.region,
                cols.profile.metadata,
            ])?;
        Ok(changed > 0)
    }

    /// Revokes the live key `name` at `unix_ms`. The row stays (audit; its name is never
    /// reused) but is no longer listed; `false` when no live key has that name.
    pub fn revoke_key(&self, name: &str, unix_ms: u64) -> Result<bool, StoreError> {
        let at = to_sql_int("revoked_ms", unix_ms)?;
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE keys SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
            )?
            .execute(params![name, at])?;
        Ok(changed > 0)
    }

    /// The live (not revoked) keys, by name: what the route table loads at start.
    pub fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, sha256, tenant, models, limits, budget, region, metadata, created_ms \
             FROM keys WHERE revoked_ms IS NULL ORDER BY name",
        )?;
        let mut rows = stmt.query([])?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next()? {
            let profile = Profile::read(row, 3)?;
            keys.push(StoredKey {
                name: row.get(0)?,
                sha256: row.get(1)?,
                tenant: row.get(2)?,
                models: profile.models,
                limits: profile.limits,
                budget: profile.budget,
                region: row.get(6)?,
                metadata: profile.metadata,
                created_ms: from_sql_int("created_ms", row.get(8)?)?,
            });
        }
        Ok(keys)
    }

    /// Adds a run-time tenant; [`StoreError::Duplicate`] when the name exists.
    pub fn insert_tenant(&self, name: &str, t: &StoredTenant) -> Result<(), StoreError> {
        let cols = ProfileColumns::new(&t.models, &t.limits, &t.budget, &t.metadata)?;
        let added = self
            .conn()
            .prepare_cached(
                "INSERT INTO tenants (name, models, limits, budget, region, metadata) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![
                name,
                cols.models,
                cols.limits,
                cols.budget,
                t.region,
                cols.metadata
            ])?;
        if added == 0 {
            return Err(StoreError::Duplicate(name.to_string()));
        }
        Ok(())
    }

    /// Replaces the tenant `name`; `false` when there is none.
    pub fn update_tenant(&self, name: &str, t: &StoredTenant) -> Result<bool, StoreError> {
        let cols = ProfileColumns::new(&t.models, &t.limits, &t.budget, &t.metadata)?;
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE tenants SET models = ?2, limits = ?3, budget = ?4, region = ?5, \
                 metadata = ?6 WHERE name = ?1",
            )?
            .execute(params![
                name,
                cols.models,
                cols.limits,
                cols.budget,
                t.region,
                cols.metadata
            ])?;
        Ok(changed > 0)
    }

    /// Removes the tenant `name`; `false` when there is none. Its keys are not touched.
    pub fn delete_tenant(&self, name: &str) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .prepare_cached("DELETE FROM tenants WHERE name = ?1")?
            .execute(params![name])?;
        Ok(changed > 0)
    }

    /// The run-time tenants, by name.
    pub fn tenants(&self) -> Result<Vec<(String, StoredTenant)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, models, limits, budget, region, metadata FROM tenants ORDER BY name",
        )?;
        let mut rows = stmt.query([])?;
        let mut tenants = Vec::new();
        while let Some(row) = rows.next()? {
            let profile = Profile::read(row, 1)?;
            tenants.push((
                row.get(0)?,
                StoredTenant {
                    models: profile.models,
                    limits: profile.limits,
                    budget: profile.budget,
                    region: row.get(4)?,
                    metadata: profile.metadata,
                },
            ));
        }
        Ok(tenants)
    }

    /// Writes each row over the one with the same scope and name, all in one transaction:
    /// after a crash the file holds either the whole flush or none of it.
    pub fn save_spend(&self, rows: &[SpendRow]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO spend (scope, name, window_id, spent_micros) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (scope, name) DO UPDATE SET \
                 window_id = excluded.window_id, spent_micros = excluded.spent_micros",
            )?;
            for row in rows {
                stmt.execute(params![
                    row.scope,
                    row.name,
                    to_sql_int("window", row.window)?,
                    to_sql_int("spent_micros", row.spent_micros)?,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every saved spend row, by scope and name: what the governor starts from.
    pub fn spend(&self) -> Result<Vec<SpendRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT scope, name, window_id, spent_micros FROM spend ORDER BY scope, name",
        )?;
        let mut rows = stmt.query([])?;
        let mut spend = Vec::new();
        while let Some(row) = rows.next()? {
            spend.push(SpendRow {
                scope: row.get(0)?,
                name: row.get(1)?,
                window: from_sql_int("window", row.get(2)?)?,
                spent_micros: from_sql_int("spent_micros", row.get(3)?)?,
            });
        }
        Ok(spend)
    }

    /// Records that the agent run `run_id` was killed, so it stays killed after a restart.
    /// Killing it again changes nothing (the first time is kept).
    pub fn kill_run(&self, run_id: &str, unix_ms: u64) -> Result<(), StoreError> {
        let at = to_sql_int("killed_ms", unix_ms)?;
        self.conn()
            .prepare_cached(
                "INSERT INTO killed_runs (run_id, killed_ms) VALUES (?1, ?2) \
                 ON CONFLICT (run_id) DO NOTHING",
            )?
            .execute(params![run_id, at])?;
        Ok(())
    }

    /// The ids of every killed run, sorted.
    pub fn killed_runs(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT run_id FROM killed_runs ORDER BY run_id")?;
        let ids = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }
}

/// A key's columns that need converting, checked before the lock is taken.
struct KeyColumns {
    profile: ProfileColumns,
    created_ms: i64,
}

impl KeyColumns {
    fn new(key: &StoredKey) -> Result<Self, StoreError> {
        if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotAHash(key.name.clone()));
        }
        Ok(Self {
            profile: ProfileColumns::new(&key.models, &key.limits, &key.budget, &key.metadata)?,
            created_ms: to_sql_int("created_ms", key.created_ms)?,
        })
    }
}

/// The JSON columns a key and a tenant share, as written.
struct ProfileColumns {
    models: Option<String>,
    limits: String,
    budget: Option<String>,
    metadata: String,
}

impl ProfileColumns {
    fn new(
        models: &Option<Vec<String>>,
        limits: &LimitsConfig,
        budget: &Option<BudgetConfig>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        if let Some(b) = budget {
            if !b.usd.is_finite() {
                return Err(StoreError::BadBudget(b.usd));
            }
        }
        Ok(Self {
            models: models.as_ref().map(|m| to_json("models", m)).transpose()?,
            limits: to_json("limits", limits)?,
            budget: budget.as_ref().map(|b| to_json("budget", b)).transpose()?,
            metadata: to_json("metadata", metadata)?,
        })
    }
}

/// The JSON columns a key and a tenant share, as read.
struct Profile {
    models: Option<Vec<String>>,
    limits: LimitsConfig,
    budget: Option<BudgetConfig>,
    metadata: BTreeMap<String, String>,
}

impl Profile {
    /// Reads `models, limits, budget, region, metadata` starting at column `first`
    /// (`region`, at `first + 3`, is a plain column and read by the caller).
    fn read(row: &Row<'_>, first: usize) -> Result<Self, StoreError> {
        let models: Option<String> = row.get(first)?;
        let limits: String = row.get(first + 1)?;
        let budget: Option<String> = row.get(first + 2)?;
        let metadata: String = row.get(first + 4)?;
        Ok(Self {
            models: models.map(|m| from_json("models", &m)).transpose()?,
            limits: from_json("limits", &limits)?,
            budget: budget.map(|b| from_json("budget", &b)).transpose()?,
            metadata: from_json("metadata", &metadata)?,
        })
    }
}

fn to_json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json { what, source })
}

fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

fn to_sql_int(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::TooLarge { what, value })
}

fn from_sql_int(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Negative { what, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::sha256_hex;
    use rusqlite::OptionalExtension;

    /// Whether a key row named `name` exists, revoked or not.
    fn key_row_exists(store: &Store, name: &str) -> bool {
        store
            .conn()
            .query_row("SELECT 1 FROM keys WHERE name = ?1", params![name], |_| {
                Ok(())
            })
            .optional()
            .unwrap()
            .is_some()
    }

    fn key(name: &str, secret: &str) -> StoredKey {
        StoredKey {
            name: name.to_string(),
            sha256: sha256_hex(secret),
            tenant: Some("acme".to_string()),
            models: Some(vec!["claude-*".to_string(), "gpt-4o".to_string()]),
            limits: LimitsConfig {
                rpm: Some(60),
                tpm: None,
            },
            budget: Some(BudgetConfig {
                usd: 12.5,
                per: "day".to_string(),
            }),
            region: Some("eu".to_string()),
            metadata: BTreeMap::from([("team".to_string(), "search".to_string())]),
            created_ms: 1_700_000_000_000,
        }
    }

    fn tenant() -> StoredTenant {
        StoredTenant {
            models: None,
            limits: LimitsConfig {
                rpm: None,
                tpm: Some(100_000),
            },
            budget: Some(BudgetConfig {
                usd: 0.1,
                per: "month".to_string(),
            }),
            region: None,
            metadata: BTreeMap::new(),
        }
    }

    fn spend_row(scope: &str, name: &str, window: u64, spent_micros: u64) -> SpendRow {
        SpendRow {
            scope: scope.to_string(),
            name: name.to_string(),
            window,
            spent_micros,
        }
    }

    #[test]
    fn keys_insert_update_revoke() {
        let store = Store::open("").unwrap();
        let alice = key("alice", "ig-alice");
        store.insert_key(&alice).unwrap();
        store.insert_key(&key("bob", "ig-bob")).unwrap();
        assert_eq!(
            store.keys().unwrap(),
            vec![alice.clone(), key("bob", "ig-bob")]
        );

        let err = store.insert_key(&key("alice", "ig-other")).unwrap_err();
        assert!(
            matches!(err, StoreError::Duplicate(ref n) if n == "alice"),
            "{err}"
        );

        let mut changed = alice.clone();
        changed.sha256 = sha256_hex("ig-alice-2");
        changed.tenant = None;
        changed.models = None;
        changed.budget = None;
        changed.limits.tpm = Some(5);
        changed.created_ms = 1;
        assert!(store.update_key(&changed).unwrap());
        let listed = store.keys().unwrap();
        assert_eq!(listed.len(), 2);
        // Everything but the creation time is replaced.
        assert_eq!(listed[0].created_ms, alice.created_ms);
        changed.created_ms = alice.created_ms;
        assert_eq!(listed[0], changed);
        assert!(!store.update_key(&key("carol", "ig-carol")).unwrap());

        assert!(store.revoke_key("alice", 1_800_000_000_000).unwrap());
        assert!(!store.revoke_key("alice", 1_800_000_000_001).unwrap());
        assert!(!store.revoke_key("nobody", 1).unwrap());
        assert_eq!(store.keys().unwrap(), vec![key("bob", "ig-bob")]);
        // Kept for audit, no longer updatable, and its name is never reused.
        assert!(key_row_exists(&store, "alice"));
        assert!(!store.update_key(&alice).unwrap());
        let err = store.insert_key(&alice).unwrap_err();
        assert!(
            matches!(err, StoreError::Duplicate(ref n) if n == "alice"),
            "{err}"
        );
    }

    #[test]
    fn key_to_config_carries_every_field() {
        let k = key("alice", "ig-alice");
        let c = k.to_config();
        assert_eq!(c.name, k.name);
        assert_eq!(c.sha256, k.sha256);
        assert_eq!(c.tenant, k.tenant);
        assert_eq!(c.models, k.models);
        assert_eq!(c.limits, k.limits);
        assert_eq!(c.budget, k.budget);
        assert_eq!(c.region, k.region);
        assert_eq!(c.metadata, k.metadata);
        let t = tenant();
        let c = t.to_config();
        assert_eq!(c.models, t.models);
        assert_eq!(c.limits, t.limits);
        assert_eq!(c.budget, t.budget);
        assert_eq!(c.region, t.region);
        assert_eq!(c.metadata, t.metadata);
    }

    #[test]
    fn refuses_what_cannot_be_stored_safely() {
        let store = Store::open("").unwrap();
        let mut plain = key("alice", "x");
        plain.sha256 = "ig-secret-plaintext".to_string();
        let err = store.insert_key(&plain).unwrap_err();
        assert!(matches!(err, StoreError::NotAHash(_)), "{err}");
        assert!(!err.to_string().contains("ig-secret-plaintext"));
        let mut nan = key("alice", "x");
        nan.budget = Some(BudgetConfig {
            usd: f64::NAN,
            per: "day".to_string(),
        });
        assert!(matches!(
            store.insert_key(&nan),
            Err(StoreError::BadBudget(_))
        ));
        let mut late = key("alice", "x");
        late.created_ms = u64::MAX;
        assert!(matches!(
            store.insert_key(&late),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(matches!(
            store.save_spend(&[
                spend_row("key", "a", 1, 1),
                spend_row("key", "b", u64::MAX, 1)
            ]),
            Err(StoreError::TooLarge { .. })
        ));
        // The failed flush left nothing behind.
        assert!(store.keys().unwrap().is_empty());
        assert!(store.spend().unwrap().is_empty());
    }

    #[test]
    fn plaintext_never_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = Store::open(path.to_str().unwrap()).unwrap();
        store
            .insert_key(&key("alice", "ig-secret-plaintext"))
            .unwrap();
        let scan = || {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(!bytes
                    .windows(b"ig-secret-plaintext".len())
                    .any(|w| w == b"ig-secret-plaintext"));
            }
        };
        // While open (the row may sit in the WAL file) and after close (checkpointed).
        scan();
        drop(store);
        scan();
        let bytes = std::fs::read(&path).unwrap();
        let hash = sha256_hex("ig-secret-plaintext");
        assert!(bytes.windows(hash.len()).any(|w| w == hash.as_bytes()));
    }

    #[test]
    fn tenants_insert_update_delete() {
        let store = Store::open("").unwrap();
        store.insert_tenant("acme", &tenant()).unwrap();
        let err = store.insert_tenant("acme", &tenant()).unwrap_err();
        assert!(
            matches!(err, StoreError::Duplicate(ref n) if n == "acme"),
            "{err}"
        );
        let mut t = tenant();
        t.models = Some(vec!["*".to_string()]);
        t.region = Some("us".to_string());
        assert!(store.update_tenant("acme", &t).unwrap());
        assert!(!store.update_tenant("other", &t).unwrap());
        store.insert_tenant("beta", &tenant()).unwrap();
        assert_eq!(
            store.tenants().unwrap(),
            vec![("acme".to_string(), t), ("beta".to_string(), tenant())]
        );
        assert!(store.delete_tenant("acme").unwrap());
        assert!(!store.delete_tenant("acme").unwrap());
        assert_eq!(
            store.tenants().unwrap(),
            vec![("beta".to_string(), tenant())]
        );
    }

    #[test]
    fn save_spend_upserts() {
        let store = Store::open("").unwrap();
        store
            .save_spend(&[
                spend_row("key", "alice", 10, 500),
                spend_row("tenant", "alice", 10, 7),
            ])
            .unwrap();
        store
            .save_spend(&[
                spend_row("key", "alice", 11, 3),
                spend_row("run", "r1", 0, 9),
            ])
            .unwrap();
        store.save_spend(&[]).unwrap();
        assert_eq!(
            store.spend().unwrap(),
            vec![
                spend_row("key", "alice", 11, 3),
                spend_row("run", "r1", 0, 9),
                spend_row("tenant", "alice", 10, 7),
            ]
        );
    }

    #[test]
    fn kill_run_is_idempotent() {
        let store = Store::open("").unwrap();
        store.kill_run("run-b", 5).unwrap();
        store.kill_run("run-a", 6).unwrap();
        store.kill_run("run-b", 7).unwrap();
        assert_eq!(store.killed_runs().unwrap(), vec!["run-a", "run-b"]);
    }

    #[test]
    fn in_memory_store_works_and_is_not_shared() {
        let a = Store::open("").unwrap();
        let b = Store::open("").unwrap();
        a.insert_key(&key("alice", "ig-alice")).unwrap();
        a.insert_tenant("acme", &tenant()).unwrap();
        a.save_spend(&[spend_row("key", "alice", 1, 2)]).unwrap();
        a.kill_run("r", 1).unwrap();
        assert_eq!(a.keys().unwrap().len(), 1);
        assert_eq!(a.tenants().unwrap().len(), 1);
        assert_eq!(a.spend().unwrap().len(), 1);
        assert_eq!(a.killed_runs().unwrap().len(), 1);
        assert!(b.keys().unwrap().is_empty());
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let path = path.to_str().unwrap();
        {
            let store = Store::open(path).unwrap();
            store.insert_key(&key("alice", "ig-alice")).unwrap();
            store.insert_key(&key("bob", "ig-bob")).unwrap();
            assert!(store.revoke_key("bob", 9).unwrap());
            store.insert_tenant("acme", &tenant()).unwrap();
            store
                .save_spend(&[spend_row("key", "alice", 19_000, 1_234_567)])
                .unwrap();
            store.kill_run("run-1", 5).unwrap();
        }
        let store = Store::open(path).unwrap();
        assert_eq!(store.keys().unwrap(), vec![key("alice", "ig-alice")]);
        // The revoked name is still taken after the restart.
        assert!(matches!(
            store.insert_key(&key("bob", "ig-bob")),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(
            store.tenants().unwrap(),
            vec![("acme".to_string(), tenant())]
        );
        assert_eq!(
            store.spend().unwrap(),
            vec![spend_row("key", "alice", 19_000, 1_234_567)]
        );
        assert_eq!(store.killed_runs().unwrap(), vec!["run-1"]);
        let version: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = store
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let path = path.to_str().unwrap();
        {
            let conn = Connection::open(path).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
        }
        assert!(matches!(Store::open(path), Err(StoreError::NewerSchema(2))));
    }
}
