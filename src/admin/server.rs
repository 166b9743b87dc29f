//! The admin HTTP listener: `GET /admin/health`, `/admin/live` and `/admin/ready`,
//! `POST /admin/reload`, `GET /metrics`, keys,
//! tenants, runs, recent requests and usage, and `GET /admin/debug/allocations` when
//! allocations are counted. It runs on its own thread and runtime so control
//! traffic never competes with a shard.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use monoio::net::TcpListener;
use monoio::{LegacyDriver, RuntimeBuilder};

use super::access::AdminAccess;
use super::reload::ConfigReloader;
use crate::config::{AdminConfig, ServerConfig};
use crate::http::{
    write_head_and_body, BodyBudget, BodyFraming, HttpError, Method, RequestHead, ResponseHead,
    ServerConn, ServerLimits,
};
use crate::proxy::Lifecycle;
use crate::route::SharedRouteTable;

/// Facts the health endpoint reports.
#[derive(Clone)]
pub struct AdminInfo {
    /// The table being served.
    pub table: SharedRouteTable,
    /// The reloader, when serving from a file.
    pub reloader: Option<Arc<ConfigReloader>>,
    /// Shutdown state.
    pub lifecycle: Arc<Lifecycle>,
    /// Number of shards.
    pub shards: usize,
    /// The IO driver's name.
    pub driver: &'static str,
    /// The keys' and tenants' counters.
    pub governor: Arc<crate::policy::LocalGovernor>,
    /// What `GET /metrics` renders (absent: metrics off, the path is a 404).
    pub metrics: Option<Arc<crate::observe::metrics::Metrics>>,
    /// The newest records and the usage ledger (absent: `[log] recent = 0`).
    pub records: Option<Arc<crate::observe::RecordViews>>,
    /// What `GET /admin/live` and `GET /admin/ready` answer from.
    pub probes: crate::service::Probes,
}

/// Binds the admin listener at `[admin] listen`.
pub fn bind_admin_listener(cfg: &AdminConfig) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(&cfg.listen)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the admin API on `std_listener` (bound by [`bind_admin_listener`], or inherited in
/// an upgrade) on a new thread; returns the bound address. Without a token (`token_env` unset
/// or empty) the API is read-only and must listen on loopback.
pub fn start_admin_server(
    cfg: &AdminConfig,
    std_listener: std::net::TcpListener,
    info: AdminInfo,
) -> std::io::Result<std::net::SocketAddr> {
    let token = cfg
        .token_env
        .as_deref()
        .and_then(|var| std::env::var(var).ok())
        .filter(|t| !t.trim().is_empty());
    let addr = std_listener.local_addr()?;
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "an admin listener off loopback needs a token: set [admin] token_env to a variable holding one",
        ));
    }
    if token.is_none() {
        tracing::info!("admin API is read-only: set [admin] token_env to allow reloads over HTTP");
    }
    let access = AdminAccess::new(addr, token.as_deref(), &cfg.hosts);
    std::thread::Builder::new()
        .name("infergate-admin".into())
        .spawn(move || {
            let rt = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build();
            let mut rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "admin runtime failed to start");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "admin listener failed");
                        return;
                    }
                };
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            monoio::spawn(serve(
                                ServerConn::new(stream),
                                info.clone(),
                                access.clone(),
                            ));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "admin accept failed");
                            monoio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        })?;
    Ok(addr)
}

async fn serve(mut conn: ServerConn, info: AdminInfo, access: AdminAccess) {
    let limits = ServerLimits::from_config(&ServerConfig {
        max_body_bytes: 64 * 1024,
        http2: false,
        ..ServerConfig::default()
    });
    // Admin bodies are tiny; they get a budget of their own, apart from the data plane's.
    let budget = BodyBudget::new(1024 * 1024);
    let mut first = true;
    loop {
        let head = match conn.read_head(&limits, first).await {
            Ok(h) => h,
            Err(HttpError::Closed) | Err(_) => return,
        };
        first = false;
        let mut permit = budget.permit();
        let Ok(body) = conn.read_body(&head, &limits, &mut permit).await else {
            return;
        };
        let mutation = head.method != Method::Get;
        let verdict = access.check(
            head.headers.get("host"),
            head.headers.get("origin"),
            head.headers.get("authorization"),
            mutation,
        );
        let json = |(status, body): (u16, serde_json::Value)| {
            (status, "application/json", Bytes::from(body.to_string()))
        };
        let (status, content_type, body) = match verdict {
            Err(denied) => {
                tracing::warn!(path = %crate::api::bounded(head.path()), reason = %denied, "admin request refused");
                json((
                    denied.status(),
                    serde_json::json!({"error": denied.to_string()}),
                ))
            }
            Ok(()) => super::metrics::answer(&head, &info)
                .unwrap_or_else(|| json(route(&head, &body, &info))),
        };
        let keep = head.wants_keep_alive();
        let mut response =
            ResponseHead::new(Vec::new(), status).header("content-type", content_type.as_bytes());
        if status == 401 {
            response = response.header("www-authenticate", b"Bearer");
        }
        let response = response.finish(BodyFraming::Length(body.len()), keep);
        if write_head_and_body(conn.io(), response, body)
            .await
            .is_err()
            || !keep
        {
            return;
        }
    }
}

/// Answers an admin request that passed the access check.
fn route(head: &RequestHead, body: &[u8], info: &AdminInfo) -> (u16, serde_json::Value) {
    if let Some(answer) = super::keys::answer(head.method, head.path(), body, info) {
        return answer;
    }
    if head.method == Method::Get {
        let query = head.target().split_once('?').map_or("", |(_, q)| q);
        let now_ms = crate::observe::unix_ms_now();
        let records = info.records.as_deref();
        if let Some(answer) = super::requests::answer(head.path(), query, records, now_ms) {
            return answer;
        }
    }
    match (head.method, head.path()) {
        (Method::Get, "/admin/health") | (Method::Get, "/health") => (200, health(info)),
        (Method::Get, "/admin/live") => info.probes.live(),
        (Method::Get, "/admin/ready") => info.probes.ready(info.table.load().version),
        (Method::Post, "/admin/reload") => match &info.reloader {
            Some(r) => {
                let r = Arc::clone(r);
                // Reading, compiling and resolving are blocking: do them off this runtime.
                let result = std::thread::spawn(move || r.reload("admin API")).join();
                match result {
                    Ok(Ok(version)) => (
                        200,
                        serde_json::json!({"reloaded": true, "version": version}),
                    ),
                    Ok(Err(e)) => (
                        400,
                        serde_json::json!({"reloaded": false, "error": e.to_string()}),
                    ),
                    Err(_) => (
                        500,
                        serde_json::json!({"reloaded": false, "error": "reload panicked"}),
                    ),
                }
            }
            None => (
                409,
                serde_json::json!({"reloaded": false, "error": "not serving from a config file"}),
            ),
        },
        (Method::Get, "/admin/debug/allocations") => match crate::shard::allocations::board() {
            Some(board) => (200, serde_json::json!({"shards": board.totals()})),
            None => (
                404,
                serde_json::json!({"error": "allocation counting is off (INFERGATE_COUNT_ALLOCATIONS=1 turns it on)"}),
            ),
        },
        (Method::Get, path) => super::usage::answer(path, &info.table.load(), &info.governor)
            .unwrap_or_else(|| (404, serde_json::json!({"error": "unknown admin path"}))),
        _ => (404, serde_json::json!({"error": "unknown admin path"})),
    }
}

fn health(info: &AdminInfo) -> serde_json::Value {
    let table = info.table.load();
    let providers: serde_json::Map<String, serde_json::Value> = table
        .providers
        .values()
        .map(|p| {
            (
                p.name.clone(),
                serde_json::json!({
                    "available": p.unavailable.is_none(),
                    "reason": p.unavailable,
                    "in_flight": p.load.in_flight(),
                    "max_concurrency": p.max_concurrency,
                    "concurrency_refusals": p.load.refused(),
                }),
            )
        })
        .collect();
    let mut models: Vec<&str> = table.models.keys().map(|k| &**k).collect();
    models.sort_unstable();
    serde_json::json!({
        "status": if info.lifecycle.is_draining() { "draining" } else { "ok" },
        "pid": std::process::id(),
        "table_version": table.version,
        "shards": info.shards,
        "driver": info.driver,
        "models": models,
        "providers": providers,
        "targets": targets(&table),
        "auth": if table.keys.is_open() { "open" } else { "keys" },
    })
}

/// Every target of the table's aliases (each provider and model once, in name order) with
/// its health over all shards, as the shards last published it, and its provider's
/// attempts in flight.
fn targets(table: &crate::route::RouteTable) -> Vec<serde_json::Value> {
    use crate::route::{BenchReason, TargetHealth, TargetState};
    let now = std::time::Instant::now();
    let now_ms = crate::observe::unix_ms_now();
    let unix_ms = |at: std::time::Instant| {
        let left = at.saturating_duration_since(now).as_millis();
        now_ms.saturating_add(u64::try_from(left).unwrap_or(u64::MAX))
    };
    let mut known = table.state.board.targets(now);
    let mut listed = std::collections::BTreeMap::new();
    for t in table.models.values().flat_map(|r| r.all_targets()) {
        listed
            .entry((t.provider.name.clone(), t.model.to_string()))
            .or_insert_with(|| std::sync::Arc::clone(&t.provider));
    }
    listed
        .into_iter()
        .map(|(key, provider)| {
            let h = known.remove(&key).unwrap_or_default();
            let TargetHealth {
                state,
                shards,
                consecutive_failures,
                ewma_ttfb,
                waiting_first_byte,
                ejections,
                benched,
            } = h;
            let (until, reason) = match state {
                TargetState::Ejected(until) => (Some(unix_ms(until)), None),
                TargetState::Benched(until, why) => (Some(unix_ms(until)), Some(why.as_str())),
                TargetState::Healthy | TargetState::Probing => (None, None),
            };
            let [healthy, probing, benched_shards, ejected] = shards;
            let benched: serde_json::Map<String, serde_json::Value> = BenchReason::ALL
                .iter()
                .map(|r| {
                    let n = benched.get(r.index()).copied().unwrap_or(0);
                    (r.as_str().to_string(), n.into())
                })
                .collect();
            serde_json::json!({
                "provider": key.0,
                "model": key.1,
                "state": state.name(),
                "until_unix_ms": until,
                "reason": reason,
                "shards": {
                    "healthy": healthy,
                    "probing": probing,
                    "benched": benched_shards,
                    "ejected": ejected,
                },
                "consecutive_failures": consecutive_failures,
                "ewma_ttfb_ms": ewma_ttfb.map(|d| d.as_secs_f64() * 1000.0),
                "waiting_first_byte": waiting_first_byte,
                "in_flight": provider.load.in_flight(),
                "max_concurrency": provider.max_concurrency,
                "ejections": ejections,
                "benched": benched,
            })
        })
        .collect()
}
