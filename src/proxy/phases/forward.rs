//! Forward: the alias's targets in plan order until one answers. A failure before any byte
//! reached the client (connect error, 5xx, 429, first-byte timeout) moves to the next
//! target; once a provider's answer is taken, it is the response.

use super::super::outcome::{Outcome, Response};
use super::super::session::{ClientRequest, Session};
use super::attempt::{self, Attempt, Failure};
use crate::api::{ApiError, ErrorKind};
use crate::route::ModelRoute;

/// Tries the targets; the last failure answers when none succeeds. An answer whose output
/// fails its JSON schema is asked again of the same target (`json_schema_retries`) before
/// the next one.
pub async fn forward(s: &mut Session<'_>, request: &ClientRequest, route: &ModelRoute) -> Outcome {
    let plan = route.plan(fastrand::u32(..), &s.ctx.health, std::time::Instant::now());
    let mut last: Option<Failure> = None;
    let mut skipped: Vec<String> = Vec::new();
    'targets: for &index in plan.indexes() {
        let Some(target) = route.targets.get(index as usize) else {
            continue;
        };
        let mut schema_retries = route.output.retries;
        loop {
            match attempt::run(s, request, route, target).await {
                Attempt::Answer(outcome) => return outcome,
                Attempt::Skip(why) => skipped.push(why),
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
    all_failed(s, route, last, &skipped)
}

/// The answer when every target failed or was skipped: the last provider error in the
/// client's format, or the gateway's own.
fn all_failed(
    s: &mut Session<'_>,
    route: &ModelRoute,
    last: Option<Failure>,
    skipped: &[String],
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
