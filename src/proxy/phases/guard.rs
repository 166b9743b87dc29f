//! Guard: the guardrail policies of the alias and of the key's tenant. On the way in, every
//! text the client sends is scanned (block: a 400 naming the policy and rule, never the
//! match; redact: the match replaced in the body; flag: recorded). On the way out, a whole
//! answer is scanned the same way before the client sees it.

use std::sync::Arc;

use bytes::Bytes;

use super::super::outcome::{Body, Next, Outcome, Response};
use super::super::session::{ClientRequest, Session};
use crate::api::{ApiError, ErrorKind};
use std::cell::RefCell;
use std::rc::Rc;

use crate::guardrails::{scan_body, GuardedStream, GuardrailPolicy, Hit};
use crate::observe::GuardrailRecord;
use crate::route::ModelRoute;
use crate::translate::StreamTranslator;
use crate::wire::WireApi;

/// Picks the policies that apply and scans the request.
pub fn request(s: &mut Session<'_>, request: &mut ClientRequest, route: &ModelRoute) -> Next {
    let mut policies: Vec<Arc<GuardrailPolicy>> = route.guardrails.clone();
    if let Some(profile) = &s.profile {
        for name in &profile.guardrails {
            if let Some(p) = s.table.guardrails.get(name) {
                if !policies.iter().any(|q| q.name == p.name) {
                    policies.push(Arc::clone(p));
                }
            }
        }
    }
    if policies.is_empty() {
        return Ok(());
    }
    let inbound: Vec<Arc<GuardrailPolicy>> =
        policies.iter().filter(|p| p.on_request).cloned().collect();
    s.guardrails = policies;
    let scan = scan_body(&inbound, &request.body);
    note(s, &scan.hits, "request");
    if let Some(hit) = scan.blocked {
        return Err(Outcome::Fail(blocked(&hit, "request")));
    }
    if let Some(body) = scan.redacted {
        let body = Bytes::from(body);
        let view = s.ctx.scratch.borrow_mut().parse(s.endpoint, &body);
        match view {
            Ok(view) => *request = ClientRequest { body, view },
            Err(_) => {
                return Err(Outcome::Fail(ApiError::new(
                    ErrorKind::Internal,
                    "guardrail_failed",
                    "A redaction left a body that does not parse; the request was not sent.",
                )))
            }
        }
    }
    Ok(())
}

/// Scans a whole successful answer with the policies that scan answers: a block replaces it
/// with an error, a redaction rewrites it.
pub fn response(s: &mut Session<'_>, mut r: Response) -> Outcome {
    let outbound = answer_policies(s);
    if outbound.is_empty() || !(200..300).contains(&r.status) {
        return Outcome::Respond(Box::new(r));
    }
    let Body::Full(body) = &r.body else {
        return Outcome::Respond(Box::new(r));
    };
    let scan = scan_body(&outbound, body);
    note(s, &scan.hits, "response");
    if let Some(hit) = scan.blocked {
        return Outcome::Fail(blocked(&hit, "response"));
    }
    if let Some(redacted) = scan.redacted {
        r.body = Body::Full(Bytes::from(redacted));
    }
    Outcome::Respond(Box::new(r))
}

/// The stream translator with the answer-side policies applied to the events it writes
/// (or, for a passthrough stream, to the provider's events); what fires is noted in the
/// record when the stream ends.
pub fn stream(
    s: &mut Session<'_>,
    translator: Option<Box<dyn StreamTranslator>>,
) -> Option<Box<dyn StreamTranslator>> {
    let outbound = answer_policies(s);
    if outbound.is_empty() {
        return translator;
    }
    let hits = Rc::new(RefCell::new(Vec::new()));
    s.stream_hits = Some(Rc::clone(&hits));
    let client = s.endpoint.client_wire().unwrap_or(WireApi::Chat);
    Some(Box::new(GuardedStream::new(
        translator, client, outbound, hits,
    )))
}

/// The session's policies that scan answers.
fn answer_policies(s: &Session<'_>) -> Vec<Arc<GuardrailPolicy>> {
    s.guardrails
        .iter()
        .filter(|p| p.on_response)
        .cloned()
        .collect()
}

/// Notes what the answer's stream guardrails fired, once it ended.
pub fn note_stream(s: &mut Session<'_>) {
    if let Some(hits) = s.stream_hits.take() {
        let hits = hits.borrow().clone();
        note(s, &hits, "response");
    }
}

/// Notes each rule that fired in the record (policy, rule, action, side, field; never the
/// matched text), counting repeats.
fn note(s: &mut Session<'_>, hits: &[Hit], side: &'static str) {
    for hit in hits {
        let found = s.record.guardrails.iter_mut().find(|g| {
            g.side == side && *g.policy == *hit.policy && g.rule == hit.rule && g.field == hit.field
        });
        match found {
            Some(g) => g.count += 1,
            None => s.record.guardrails.push(GuardrailRecord {
                policy: Arc::clone(&hit.policy),
                rule: hit.rule.clone(),
                action: hit.action_name(),
                side,
                field: hit.field.clone(),
                count: 1,
            }),
        }
    }
    if !hits.is_empty() {
        tracing::info!(request_id = %s.request_id, side, hits = hits.len(), "guardrails fired");
    }
}

/// The client's 400 for blocked content: the policy, the rule and where, never the match.
fn blocked(hit: &Hit, side: &str) -> ApiError {
    let whose = if side == "request" {
        "The request"
    } else {
        "The model's answer"
    };
    ApiError::new(
        ErrorKind::InvalidRequest,
        "guardrail_blocked",
        format!(
            "{whose} was blocked by guardrail `{}`: rule `{}` matched in `{}`.",
            hit.policy, hit.rule, hit.field
        ),
    )
}
