//! `GET /mock/last-request`: the last provider request received, so conformance tests can
//! assert exactly what a gateway sent upstream.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::request::Request;

/// The last request, as served in JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LastRequest {
    /// `GET`, `POST`…
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// Headers by lowercase name; repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; a body that is not JSON is a string, no body is null.
    pub body: serde_json::Value,
}

/// The last request seen by any server thread (`/mock/*` requests are not recorded).
#[derive(Debug, Default)]
pub struct LastRequestSlot(Mutex<Option<LastRequest>>);

impl LastRequestSlot {
    /// Records `request` unless it is for the mock's own `/mock/*` endpoints.
    pub fn record(&self, request: &Request) {
        if request.path.starts_with("/mock/") {
            return;
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &request.headers {
            headers
                .entry(name.clone())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        let body = if request.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&request.body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&request.body).into_owned())
            })
        };
        let last = LastRequest {
            method: request.method_name.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers,
            body,
        };
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(last);
        }
    }

    /// The JSON of the last request, or `None` before the first one.
    pub fn to_json(&self) -> Option<Vec<u8>> {
        let slot = self.0.lock().ok()?;
        slot.as_ref().and_then(|l| serde_json::to_vec(l).ok())
    }
}
