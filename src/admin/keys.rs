//! The admin API's changes to governance: create, list, update and revoke keys and tenants
//! at run time (persisted in the store), and read or kill agent runs.
//!
//! A change is checked by compiling the config it would make before it is stored, and
//! takes effect on every shard from the next request (the route table is rebuilt and
//! swapped). Keys and tenants from the config file are listed but changed only there.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::reload::ChangeError;
use super::server::AdminInfo;
use crate::config::{BudgetConfig, LimitsConfig};
use crate::http::Method;
use crate::policy::{sha256_hex, StoreError, StoredKey, StoredTenant};

/// An admin answer: status and JSON body.
type Answer = (u16, serde_json::Value);

/// `POST /admin/keys` and `PATCH /admin/keys/{name}` bodies (PATCH: every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    tenant: Option<String>,
    models: Option<Vec<String>>,
    limits: Option<LimitsConfig>,
    budget: Option<BudgetConfig>,
    region: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

/// `POST /admin/tenants` and `PATCH /admin/tenants/{name}` bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    name: Option<String>,
    models: Option<Vec<String>>,
    limits: Option<LimitsConfig>,
    budget: Option<BudgetConfig>,
    region: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

/// Answers the governance paths, or `None` for any other path.
pub fn answer(method: Method, path: &str, body: &[u8], info: &AdminInfo) -> Option<Answer> {
    let rest = path.strip_prefix("/admin/")?;
    let (collection, name) = match rest.split_once('/') {
        Some((c, n)) => (c, Some(n)),
        None => (rest, None),
    };
    Some(match (method, collection, name) {
        (Method::Get, "keys", None) => list_keys(info),
        (Method::Post, "keys", None) => create_key(body, info),
        (Method::Patch, "keys", Some(n)) => update_key(n, body, info),
        (Method::Delete, "keys", Some(n)) => revoke_key(n, info),
        (Method::Get, "tenants", None) => list_tenants(info),
        (Method::Post, "tenants", None) => create_tenant(body, info),
        (Method::Patch, "tenants", Some(n)) => update_tenant(n, body, info),
        (Method::Delete, "tenants", Some(n)) => delete_tenant(n, info),
        (Method::Get, "runs", Some(id)) if !id.contains('/') => read_run(id, info),
        (Method::Post, "runs", Some(id)) => match id.strip_suffix("/kill") {
            Some(id) => kill_run(id, info),
            None => return None,
        },
        _ => return None,
    })
}

fn error(status: u16, message: impl std::fmt::Display) -> Answer {
    (status, serde_json::json!({ "error": message.to_string() }))
}

/// A name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn check_name(what: &str, name: &str) -> Result<(), Answer> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(error(
            400,
            format!("{what} name must be 1 to 64 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|e| error(400, format!("invalid JSON body: {e}")))
}

fn changed(result: Result<Answer, ChangeError>) -> Answer {
    match result {
        Ok(a) => a,
        Err(ChangeError::Config(e)) => error(400, e),
        Err(ChangeError::Store(StoreError::Duplicate(n))) => {
            error(409, format!("{n:?} already exists"))
        }
        Err(ChangeError::NotFound(m)) => error(404, m),
        Err(e @ ChangeError::Store(_)) => {
            tracing::error!(error = %e, "admin change failed in the store");
            error(500, e)
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh key: `ig-` and 32 random bytes in hex, from the OS's secure source.
fn new_secret() -> Result<String, Answer> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| error(500, format!("no randomness: {e}")))?;
    Ok(format!("ig-{}", hex::encode(bytes)))
}

fn in_config_file(info: &AdminInfo, key: Option<&str>, tenant: Option<&str>) -> bool {
    let table = info.table.load();
    key.is_some_and(|k| table.governance.tenancy.get(k).is_some() && !stored_key(info, k))
        || tenant.is_some_and(|t| {
            table.governance.rules.tenants.iter().any(|(n, _)| n == t) && !stored_tenant(info, t)
        })
}

fn stored_key(info: &AdminInfo, name: &str) -> bool {
    info.reloader
        .as_ref()
        .and_then(|r| r.store().keys().ok())
        .is_some_and(|ks| ks.iter().any(|k| k.name == name))
}

fn stored_tenant(info: &AdminInfo, name: &str) -> bool {
    info.reloader
        .as_ref()
        .and_then(|r| r.store().tenants().ok())
        .is_some_and(|ts| ts.iter().any(|(n, _)| n == name))
}

fn list_keys(info: &AdminInfo) -> Answer {
    let table = info.table.load();
    let stored = info
        .reloader
        .as_ref()
        .and_then(|r| r.store().keys().ok())
        .unwrap_or_default();
    let mut keys: Vec<serde_json::Value> = table
        .governance
        .rules
        .keys
        .iter()
        .map(|k| {
            let from_store = stored.iter().find(|s| s.name == k.name);
            serde_json::json!({
                "name": k.name,
                "tenant": k.tenant,
                "source": if from_store.is_some() { "store" } else { "config" },
                "created_ms": from_store.map(|s| s.created_ms),
            })
        })
        .collect();
    keys.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    (200, serde_json::json!({ "keys": keys }))
}

fn create_key(body: &[u8], info: &AdminInfo) -> Answer {
    let Some(reloader) = &info.reloader else {
        return error(409, "not serving from a config file");
    };
    let req: KeyBody = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    let Some(name) = req.name.clone() else {
        return error(400, "a key needs a name");
    };
    if let Err(a) = check_name("key", &name) {
        return a;
    }
    if info.table.load().governance.tenancy.get(&name).is_some() {
        return error(409, format!("key {name:?} already exists"));
    }
    let secret = match new_secret() {
        Ok(s) => s,
        Err(a) => return a,
    };
    let key = StoredKey {
        name: name.clone(),
        sha256: sha256_hex(&secret),
        tenant: req.tenant,
        models: req.models,
        limits: req.limits.unwrap_or_default(),
        budget: req.budget,
        region: req.region,
        metadata: req.metadata.unwrap_or_default(),
        created_ms: now_ms(),
    };
    let check = key.to_config();
    changed(reloader.change(
        "admin: key created",
        |cfg| cfg.auth.keys.push(check),
        |store| {
            store.insert_key(&key)?;
            Ok((
                201,
                serde_json::json!({
                    "name": name,
                    "key": secret,
                    "tenant": key.tenant,
                    "note": "the key is shown once; only its SHA-256 is kept",
                }),
            ))
        },
    ))
}

fn update_key(name: &str, body: &[u8], info: &AdminInfo) -> Answer {
    let Some(reloader) = &info.reloader else {
        return error(409, "not serving from a config file");
    };
    if in_config_file(info, Some(name), None) {
        return error(
            409,
            format!("key {name:?} is defined in the config file; change it there"),
        );
    }
    let patch: KeyBody = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    if patch.name.is_some() {
        return error(
            400,
            "a key's name can't change; revoke it and create another",
        );
    }
    let current = reloader
        .store()
        .keys()
        .ok()
        .and_then(|ks| ks.into_iter().find(|k| k.name == name));
    let Some(mut key) = current else {
        return error(404, format!("no run-time key named {name:?}"));
    };
    if patch.tenant.is_some() {
        key.tenant = patch.tenant;
    }
    if patch.models.is_some() {
        key.models = patch.models;
    }
    if let Some(l) = patch.limits {
        key.limits = l;
    }
    if patch.budget.is_some() {
        key.budget = patch.budget;
    }
    if patch.region.is_some() {
        key.region = patch.region;
    }
    if let Some(m) = patch.metadata {
        key.metadata = m;
    }
    let check = key.to_config();
    changed(reloader.change(
        "admin: key updated",
        |cfg| {
            cfg.auth.keys.retain(|k| k.name != check.name);
            cfg.auth.keys.push(check);
        },
        |store| match store.update_key(&key)? {
            true => Ok((
                200,
                serde_json::json!({ "name": key.name, "updated": true }),
            )),
            false => Err(ChangeError::NotFound(format!(
                "no run-time key named {:?}",
                key.name
            ))),
        },
    ))
}

fn revoke_key(name: &str, info: &AdminInfo) -> Answer {
    let Some(reloader) = &info.reloader else {
        return error(409, "not serving from a config file");
    };
    if in_config_file(info, Some(name), None) {
        return error(
            409,
            format!("key {name:?} is defined in the config file; remove it there"),
        );
    }
    let owned = name.to_string();
    changed(reloader.change(
        "admin: key revoked",
        |cfg| cfg.auth.keys.retain(|k| k.name != owned),
        |store| match store.revoke_key(name, now_ms())? {
            true => Ok((200, serde_json::json!({ "name": name, "revoked": true }))),
            false => Err(ChangeError::NotFound(format!(
                "no run-time key named {name:?}"
            ))),
        },
    ))
}

fn list_tenants(info: &AdminInfo) -> Answer {
    let table = info.table.load();
    let mut tenants: Vec<serde_json::Value> = table
        .governance
        .rules
        .tenants
        .iter()
        .map(|(name, _)| {
            let source = if stored_tenant(info, name) {
                "store"
            } else {
                "config"
            };
            serde_json::json!({ "name": name, "source": source })
        })
        .collect();
    tenants.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    (200, serde_json::json!({ "tenants": tenants }))
}

fn tenant_of(t: TenantBody, base: Option<StoredTenant>) -> StoredTenant {
    let base = base.unwrap_or(StoredTenant {
        models: None,
        limits: LimitsConfig::default(),
        budget: None,
        region: None,
        metadata: BTreeMap::new(),
    });
    StoredTenant {
        models: t.models.or(base.models),
        limits: t.limits.unwrap_or(base.limits),
        budget: t.budget.or(base.budget),
        region: t.region.or(base.region),
        metadata: t.metadata.unwrap_or(base.metadata),
    }
}

fn create_tenant(body: &[u8], info: &AdminInfo) -> Answer {
    let Some(reloader) = &info.reloader else {
        return error(409, "not serving from a config file");
    };
    let mut req: TenantBody = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    let Some(name) = req.name.take() else {
        return error(400, "a tenant needs a name");
    };
    if let Err(a) = check_name("tenant", &name) {
        return a;
    }
    if info
        .table
        .load()
        .governance
        .rules
        .tenants
        .iter()
        .any(|(n, _)| *n == name)
    {
        return error(409, format!("tenant {name:?} already exists"));
    }
    let tenant = tenant_of(req, None);
    let check = tenant.to_config();
    changed(reloader.change(
        "admin: tenant created",
        |cfg| {
            cfg.tenants.insert(name.clone(), check);
        },
        |store| {
            store.insert_tenant(&name, &tenant)?;
            Ok((201, serde_json::json!({ "name": name })))
        },
    ))
}

fn update_tenant(name: &str, body: &[u8], info: &AdminInfo) -> Answer {
    let Some(reloader) = &info.reloader else {
        return error(409, "not serving from a config file");
    };
    if in_config_file(info, None, Some(name)) {
        return error(
            409,
            format!("tenant {name:?} is defined in the config file; change it there"),
        );
    }
    let patch: TenantBody = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    if patch.name.is_some() {
        return error(400, "a tenant's name can't change");
    }
    let current = reloader
        .store()
        .tenants()
        .ok()
        .and_then(|ts| ts.into_iter().find(|(n, _)| n == name).map(|(_, t)| t));
    let Some(current) = current else {
        return error(404, format!("no run-time tenant named {name:?}"));
    };
    let tenant = tenant_of(patch, Some(current));
    let check = tenant.to_config();
    changed(reloader.change(
        "admin: tenant updated",
        |cfg| {
            cfg.tenants.insert(name.to_string(), check);
        },
        |store| match store.update_tenant(name, &tenant)? {
            true => Ok((200, serde_json::json!({ "name": name, "updated": true }))),
            false => Err(ChangeError::NotFound(format!(
                "no run-time tenant named {name:?}"
            ))),
        },
    ))
}

fn delete_tenant(name: &str, info: &AdminInfo) -> Answer {
    let Some(reloader) = &info.reloader else {
        return error(409, "not serving from a config file");
    };
    if in_config_file(info, None, Some(name)) {
        return error(
            409,
            format!("tenant {name:?} is defined in the config file; remove it there"),
        );
    }
    changed(reloader.change(
        "admin: tenant deleted",
        |cfg| {
            cfg.tenants.remove(name);
        },
        |store| match store.delete_tenant(name)? {
            true => Ok((200, serde_json::json!({ "name": name, "deleted": true }))),
            false => Err(ChangeError::NotFound(format!(
                "no run-time tenant named {name:?}"
            ))),
        },
    ))
}

fn read_run(id: &str, info: &AdminInfo) -> Answer {
    let runs = info.governor.runs();
    let views = runs.views(id);
    if views.is_empty() && !runs.is_killed(id) {
        return error(
            404,
            format!("no run {:?} is known", crate::api::bounded(id)),
        );
    }
    (
        200,
        serde_json::json!({ "id": id, "killed": runs.is_killed(id), "runs": views }),
    )
}

fn kill_run(id: &str, info: &AdminInfo) -> Answer {
    if id.is_empty() || id.len() > crate::policy::MAX_RUN_ID {
        return error(400, "run id must be 1 to 128 characters");
    }
    if let Some(r) = &info.reloader {
        if let Err(e) = r.store().kill_run(id, now_ms()) {
            tracing::error!(error = %e, "could not persist a killed run");
            return error(500, e);
        }
    }
    let live = info.governor.runs().kill(id);
    tracing::warn!(run = %crate::api::bounded(id), live, "agent run killed by the admin API");
    (
        200,
        serde_json::json!({ "id": id, "killed": true, "live_runs": live }),
    )
}
