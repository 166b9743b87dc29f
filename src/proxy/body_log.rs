//! What an alias with `log_bodies = true` records of a call: the request as forwarded and
//! the answer as the client got it, with every match of the session's guardrail rules
//! redacted (whatever each policy's action), and bounded in size.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::GuardrailAction;
use crate::guardrails::{scan_body, GuardrailPolicy};

/// Largest body recorded; a larger one is recorded by its size only.
pub const MAX_LOGGED_BYTES: usize = 64 * 1024;

/// The session's policies as redactions on both sides: a log never holds what any of the
/// rules finds.
pub fn redactions(policies: &[Arc<GuardrailPolicy>]) -> Vec<Arc<GuardrailPolicy>> {
    policies
        .iter()
        .map(|p| {
            Arc::new(GuardrailPolicy {
                name: Arc::clone(&p.name),
                action: GuardrailAction::Redact,
                on_request: true,
                on_response: true,
                detector: Arc::clone(&p.detector),
            })
        })
        .collect()
}

/// A JSON body for the record, redacted; bodies that are not JSON are kept as text.
pub fn json_body(redactions: &[Arc<GuardrailPolicy>], body: &[u8]) -> Value {
    if body.len() > MAX_LOGGED_BYTES {
        return json!({"omitted_bytes": body.len()});
    }
    let scan = scan_body(redactions, body);
    let bytes = scan.redacted.as_deref().unwrap_or(body);
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => text_body(redactions, bytes),
    }
}

/// A text body (an event stream) for the record, redacted.
pub fn text_body(redactions: &[Arc<GuardrailPolicy>], body: &[u8]) -> Value {
    if body.len() > MAX_LOGGED_BYTES {
        return json!({"omitted_bytes": body.len()});
    }
    let mut text = String::from_utf8_lossy(body).into_owned();
    for p in redactions {
        let found = p.detector.find(&text);
        if !found.is_empty() {
            text = p.detector.redact(&text, &found);
        }
    }
    Value::String(text)
}
