//! `GET /admin/keys/{name}` and `GET /admin/tenants/{name}`: a key's or tenant's rules and
//! where it stands now (requests and tokens left this minute, spend, reservations in flight
//! and what remains of its budget). Names only, never key material.

use crate::policy::{Governor, LocalGovernor, RateState, Scope, Usage};
use crate::route::RouteTable;

/// The standing of the key or tenant a path names, or `None` when the path is not one.
pub fn answer(
    path: &str,
    table: &RouteTable,
    governor: &LocalGovernor,
) -> Option<(u16, serde_json::Value)> {
    let (scope, name) = if let Some(n) = path.strip_prefix("/admin/keys/") {
        (Scope::Key, n)
    } else if let Some(n) = path.strip_prefix("/admin/tenants/") {
        (Scope::Tenant, n)
    } else {
        return None;
    };
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let known = match scope {
        Scope::Run => false,
        Scope::Key => table.governance.tenancy.get(name).is_some(),
        Scope::Tenant => table
            .governance
            .rules
            .tenants
            .iter()
            .any(|(t, _)| t == name),
    };
    if !known {
        return Some((
            404,
            serde_json::json!({"error": format!("no {scope} named {:?}", crate::api::bounded(name))}),
        ));
    }
    let usage = governor.read(scope, name, governor.now());
    let mut body = match usage.map(usage_json) {
        Some(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    body.insert("name".into(), name.into());
    body.insert("scope".into(), scope.to_string().into());
    if let (Scope::Key, Some(p)) = (scope, table.governance.tenancy.get(name)) {
        body.insert("tenant".into(), p.tenant.as_deref().into());
        body.insert("region".into(), p.region.as_deref().into());
    }
    Some((200, serde_json::Value::Object(body)))
}

fn rate_json(r: RateState) -> serde_json::Value {
    serde_json::json!({"limit": r.limit, "remaining": r.remaining, "reset": r.reset()})
}

fn usage_json(u: Usage) -> serde_json::Value {
    let usd = |m: u64| m as f64 / 1e6;
    serde_json::json!({
        "requests": u.requests.map(rate_json),
        "tokens": u.tokens.map(rate_json),
        "budget": u.budget.map(|b| serde_json::json!({
            "cap_usd": usd(b.cap),
            "per": b.per.to_string(),
            "spent_usd": usd(b.spent),
            "reserved_usd": usd(b.reserved),
            "remaining_usd": usd(b.remaining),
            "resets_in_ms": b.resets_in_ms,
        })),
    })
}
