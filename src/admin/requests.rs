//! `GET /admin/requests/{id}`, `GET /admin/requests?key=&tenant=&run=&model=&status=&since=
//! &errors=&limit=` over the newest records in memory, and `GET /admin/usage?by=tenant|key|
//! model&window=hour|day|week`: tokens, cost and counts from the writer's hourly ledger.

use serde_json::{json, Value};

use crate::observe::{RecordFilter, RecordViews, UsageBy};

/// Records returned when the query sets no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// The answer for a path this module serves, or `None` when it is not one.
pub fn answer(
    path: &str,
    query: &str,
    views: Option<&RecordViews>,
    now_ms: u64,
) -> Option<(u16, Value)> {
    let wanted =
        path == "/admin/requests" || path == "/admin/usage" || path.starts_with("/admin/requests/");
    if !wanted {
        return None;
    }
    let Some(views) = views else {
        return Some((
            404,
            json!({"error": "recent requests are not kept ([log] recent = 0)"}),
        ));
    };
    Some(match path {
        "/admin/requests" => list(views, query, now_ms),
        "/admin/usage" => usage(views, query, now_ms),
        _ => one(views, path.trim_start_matches("/admin/requests/")),
    })
}

fn list(views: &RecordViews, query: &str, now_ms: u64) -> (u16, Value) {
    let mut filter = RecordFilter::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if let Err(e) = filter.set(&name, &value, now_ms) {
            return (400, json!({"error": e.to_string()}));
        }
    }
    let limit = filter.limit_or(DEFAULT_LIMIT);
    let found = views.query(&filter, limit);
    (200, json!({"count": found.len(), "requests": found}))
}

fn one(views: &RecordViews, id: &str) -> (u16, Value) {
    if id.is_empty() || id.contains('/') {
        return (404, json!({"error": "unknown admin path"}));
    }
    let filter = RecordFilter {
        request_id: Some(id.to_string()),
        ..RecordFilter::default()
    };
    match views.query(&filter, 1).pop() {
        Some(record) => (200, record),
        None => (
            404,
            json!({"error": format!("no recent request {:?}", crate::api::bounded(id))}),
        ),
    }
}

fn usage(views: &RecordViews, query: &str, now_ms: u64) -> (u16, Value) {
    let mut by = UsageBy::Tenant;
    let mut window = ("day", 24);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "by" => match UsageBy::parse(&value) {
                Some(b) => by = b,
                None => return (400, json!({"error": "by must be tenant, key or model"})),
            },
            "window" => {
                window = match &*value {
                    "hour" => ("hour", 1),
                    "day" => ("day", 24),
                    "week" => ("week", 24 * 7),
                    _ => return (400, json!({"error": "window must be hour, day or week"})),
                }
            }
            other => {
                return (
                    400,
                    json!({"error": format!("unknown parameter {:?} (by, window)", crate::api::bounded(other))}),
                )
            }
        }
    }
    let rows = views.usage(by, window.1, now_ms);
    (
        200,
        json!({"by": by.as_str(), "window": window.0, "rows": rows}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::RequestRecord;

    fn views() -> std::sync::Arc<RecordViews> {
        let v = RecordViews::new(100);
        for (i, tenant) in ["acme", "acme", "beta"].iter().enumerate() {
            let mut r = RequestRecord::started(format!("r{i}"), 0);
            r.tenant = Some(std::sync::Arc::from(*tenant));
            r.status = if i == 1 { 502 } else { 200 };
            r.cost_usd = Some(0.25);
            v.add(&r, &serde_json::to_string(&r).unwrap(), 1_000);
        }
        v
    }

    #[test]
    fn requests_are_listed_filtered_and_found_by_id() {
        let v = views();
        let (status, body) =
            answer("/admin/requests", "tenant=acme&status=5xx", Some(&v), 1_000).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["count"], 1);
        assert_eq!(body["requests"][0]["request_id"], "r1");
        let (status, body) = answer("/admin/requests/r2", "", Some(&v), 1_000).unwrap();
        assert_eq!((status, body["tenant"].as_str()), (200, Some("beta")));
        assert_eq!(
            answer("/admin/requests/nope", "", Some(&v), 1_000)
                .unwrap()
                .0,
            404
        );
        assert_eq!(
            answer("/admin/requests", "status=7", Some(&v), 1_000)
                .unwrap()
                .0,
            400
        );
        assert!(answer("/admin/keys", "", Some(&v), 1_000).is_none());
        assert_eq!(answer("/admin/requests", "", None, 1_000).unwrap().0, 404);
    }

    #[test]
    fn usage_is_grouped_and_windowed() {
        let v = views();
        let (status, body) =
            answer("/admin/usage", "by=tenant&window=day", Some(&v), 1_000).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["rows"][0]["name"], "acme");
        assert_eq!(body["rows"][0]["requests"], 2);
        assert_eq!(body["rows"][0]["errors"], 1);
        assert_eq!(
            answer("/admin/usage", "by=colour", Some(&v), 1_000)
                .unwrap()
                .0,
            400
        );
        assert_eq!(
            answer("/admin/usage", "window=year", Some(&v), 1_000)
                .unwrap()
                .0,
            400
        );
    }
}
