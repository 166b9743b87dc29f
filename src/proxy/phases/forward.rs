//! Forward: the alias's targets in plan order until one answers. A failure before any byte
//! reached the client (connect error, 5xx, 429, first-byte timeout) moves to the next
//! target, within the alias's retry rules and budget; once a provider's answer is taken,
//! it is the response.
//!
//! A target whose provider is at its `max_concurrency` is passed over without a call: the
//! record gets an attempt with error `concurrency_limited` (no status, no time), which is
//! neither a retry nor a failure of the target. When every target was full and none
//! failed, the client gets 503 `upstream_concurrency_exhausted` with `retry-after: 1`.

use super::super::outcome::{Outcome, Response};
use super::super::session::{ClientRequest, Session};
use super::attempt::{self, Attempt, Failure};
use crate::api::{ApiError, ErrorKind};
use crate::observe::unix_ms_now;
use crate::route::{fnv1a, ModelRoute, Needs, PlanInput, RequestFacts, Target};
use std::time::Instant;

/// Tries the targets; the last failure answers when none succeeds. An answer whose output
/// fails its JSON schema is asked again of the same target (`json_schema_retries`) before
/// the next one. Attempts after a failure are retries: at most `retries.max` of them (by
/// default one per other target), each within the alias's retry budget on this shard; when
/// the plan runs out before that, its targets are asked again after a backoff, skipping
/// those that became unavailable. Full targets are recorded as refused and passed over.
pub async fn forward(s: &mut Session<'_>, request: &ClientRequest, route: &ModelRoute) -> Outcome {
    let region = s.record.region.clone();
    let needs = if route.restricted || !route.rules.is_empty() {
        needs_of(request, route)
    } else {
        Needs::default()
    };
    let input = PlanInput {
        roll: fastrand::u32(..),
        region: region.as_deref(),
        session: session_hash(s, request, route),
        needs,
        rule: rule_for(s, request, route, &needs),
    };
    let targets = route.targets_of(input.rule);
    s.record.route_rule = input.rule.map(|i| i + 1);
    let plan = route.plan(&input, &s.ctx.health, Instant::now());
    s.record.affinity_moved = plan.affinity_moved;
    let order = plan.indexes();
    if order.is_empty() {
        return Outcome::Fail(match &region {
            Some(region) if route.regional => ApiError::new(
                ErrorKind::PermissionDenied,
                "no_target_in_region",
                format!(
                    "Model `{}` has no target in region `{region}`, the region of this key \
                     (or none there can serve this request).",
                    route.alias
                ),
            ),
            _ => ApiError::new(
                ErrorKind::InvalidRequest,
                "no_capable_target",
                format!(
                    "No target of model `{}` can serve this request (it needs {}).",
                    route.alias,
                    describe(&input.needs)
                ),
            ),
        });
    }
    let second = unix_ms_now() / 1000;
    s.ctx.retries.request(&route.alias, second);
    let mut last: Option<Failure> = None;
    let mut skipped: Vec<String> = Vec::new();
    // The targets the plan put last for being full are refused now, before any call, so
    // the record says why the request went elsewhere.
    let mut refused = false;
    for &index in order.iter().filter(|&&i| plan.was_full(i)) {
        if let Some(target) = targets.get(usize::from(index)) {
            refuse(s, target);
            refused = true;
        }
    }
    'targets: for k in 0..route.retries.attempts(order.len()) {
        let Some(&index) = order.get(k % order.len().max(1)) else {
            break;
        };
        let Some(target) = targets.get(index as usize) else {
            continue;
        };
        let repeat = k / order.len().max(1);
        if repeat > 0 {
            let health =
                s.ctx
                    .health
                    .availability(&target.provider.name, &target.model, Instant::now());
            if !health.is_available() || target.provider.is_full() {
                continue;
            }
        }
        if target.provider.is_full() {
            // Still full (or full since the plan): passed over, no retry spent.
            if !plan.was_full(index) {
                refuse(s, target);
                refused = true;
            }
            continue;
        }
        if last.is_some() {
            if !s
                .ctx
                .retries
                .try_retry(&route.alias, route.retries.budget_percent, second)
            {
                tracing::debug!(model = %route.alias, "retry budget spent; no more attempts");
                s.record.retry_budget_spent = true;
                break;
            }
            if repeat > 0 {
                let wait = route.retries.backoff(repeat as u32 - 1, fastrand::u32(..));
                monoio::time::sleep(wait).await;
            }
        }
        let mut schema_retries = route.output.retries;
        loop {
            match attempt::run(s, request, route, target).await {
                Attempt::Answer(outcome) => return outcome,
                Attempt::Skip(why) => skipped.push(why),
                Attempt::Full => {
                    refuse(s, target);
                    refused = true;
                }
                Attempt::Retry(Failure::Invalid(violation)) => {
                    last = Some(Failure::Invalid(violation));
                    if schema_retries > 0 {
                        schema_retries -= 1;
                        continue;
                    }
                }
                Attempt::Retry(failure) => {
                    let go_on = failure.may_retry();
                    last = Some(failure);
                    if !go_on {
                        break 'targets;
                    }
                }
            }
            break;
        }
    }
    all_failed(s, route, last, &skipped, refused)
}

/// Records that `target` was passed over because its provider was at its
/// `max_concurrency`, and counts the refusal.
fn refuse(s: &mut Session<'_>, target: &Target) {
    target.provider.load.note_refusal();
    let error = Some(CONCURRENCY_LIMITED.to_string());
    let now = Instant::now();
    s.record
        .attempts
        .push(attempt::record(target, None, error, (now, s.started)));
}

/// The attempt error of a target passed over for its provider's `max_concurrency`.
const CONCURRENCY_LIMITED: &str = "concurrency_limited";

/// The first of the alias's rules whose conditions the request meets.
fn rule_for(
    s: &Session<'_>,
    request: &ClientRequest,
    route: &ModelRoute,
    needs: &Needs,
) -> Option<usize> {
    if route.rules.is_empty() {
        return None;
    }
    let metadata = s.record.metadata.as_deref();
    let facts = RequestFacts {
        headers: &s.head.headers,
        tenant: s.record.tenant.as_deref(),
        tier: metadata.and_then(|m| m.get("tier")).map(String::as_str),
        region: s.record.region.as_deref(),
        needs,
        prompt_tokens: request.body.len() as u64 / 4,
    };
    route.rules.iter().position(|r| r.matches(&facts))
}

/// What the request needs of a target: tools, images, a JSON schema, and its size in
/// tokens (about 4 bytes a token, plus the output it allows).
fn needs_of(request: &ClientRequest, route: &ModelRoute) -> Needs {
    let body = &request.body[..];
    let has = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    let schema_asked =
        request.view.structured_output && (has(b"\"json_schema\"") || has(b"\"json_object\""));
    Needs {
        tools: request.view.tools,
        vision: has(b"\"image_url\"") || has(b"\"input_image\"") || has(b"\"image\""),
        json_schema: schema_asked || route.output.schema.is_some(),
        tokens: (body.len() as u64 / 4).saturating_add(request.view.max_output_tokens.unwrap_or(0)),
    }
}

/// The needs, in words, for the `no_capable_target` error.
fn describe(needs: &Needs) -> String {
    let mut parts = Vec::new();
    if needs.tools {
        parts.push("tools".to_string());
    }
    if needs.vision {
        parts.push("image input".to_string());
    }
    if needs.json_schema {
        parts.push("a JSON schema".to_string());
    }
    parts.push(format!("about {} tokens of context", needs.tokens));
    parts.join(", ")
}

/// The hash of the request's session for affinity: `x-infergate-session-id`, else the
/// alias's `affinity_fields` in the body (`user`, `metadata.user_id`), else its agent run's
/// id; `None` without any.
fn session_hash(s: &Session<'_>, request: &ClientRequest, route: &ModelRoute) -> Option<u64> {
    let hash = |id: &[u8]| (!id.is_empty()).then(|| fnv1a(0x9e37_79b9_7f4a_7c15, id));
    if let Some(id) = s.head.headers.get("x-infergate-session-id") {
        return hash(id.trim_ascii());
    }
    if let Some(id) = super::admit::body_field(&request.body, &route.affinity_fields) {
        return hash(id.as_bytes());
    }
    hash(s.record.run_id.as_deref()?.as_bytes())
}

/// The answer when every target failed or was skipped: the last provider error in the
/// client's format, or the gateway's own.
fn all_failed(
    s: &mut Session<'_>,
    route: &ModelRoute,
    last: Option<Failure>,
    skipped: &[String],
    refused: bool,
) -> Outcome {
    let attempts = s.record.attempts.len();
    match last {
        Some(Failure::Status(failed)) => {
            let (status, body, translated) = failed.for_client();
            let mut head = s
                .response_head(status)
                .header_display("x-infergate-attempts", attempts);
            head = match (&failed.content_type, translated) {
                (Some(ct), false) => head.header("content-type", ct),
                _ => head.header("content-type", b"application/json"),
            };
            let mut response = Response::full(status, head, body);
            response.error = Some("all_targets_failed");
            Outcome::Respond(Box::new(response))
        }
        Some(Failure::Transport(e)) => {
            let kind = if e.is_timeout() {
                ErrorKind::UpstreamTimeout
            } else {
                ErrorKind::UpstreamFailed
            };
            Outcome::Fail(ApiError::new(
                kind,
                "upstream_failed",
                format!(
                    "All {attempts} attempt(s) for model `{}` failed; the last: {e}.",
                    route.alias
                ),
            ))
        }
        Some(Failure::Invalid(violation)) => Outcome::Fail(ApiError::new(
            ErrorKind::UpstreamFailed,
            "json_schema_violation",
            format!(
                "No answer of model `{}` matched the JSON schema after {attempts} attempt(s); \
                 the last one's output: {violation}.",
                route.alias
            ),
        )),
        None if refused => Outcome::Fail(
            ApiError::new(
                ErrorKind::Unavailable,
                "upstream_concurrency_exhausted",
                format!(
                    "Every target of model `{}` is at its provider's concurrency limit; \
                     retry shortly.",
                    route.alias
                ),
            )
            .with_retry_after(Some(1)),
        ),
        None => Outcome::Fail(ApiError::new(
            ErrorKind::Unavailable,
            "no_available_target",
            format!(
                "No target of model `{}` is available ({}).",
                route.alias,
                skipped.join("; ")
            ),
        )),
    }
}
