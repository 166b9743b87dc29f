//! The phases of one request, in the order they run. Each takes the [`Session`] and either
//! lets the request go on (`Ok`) or ends it with an [`Outcome`] (`Err`); forwarding always
//! ends it. [`super::finish`] then carries the outcome out.

mod accept;
mod admit;
mod attempt;
mod authenticate;
mod cache;
mod estimate;
mod forward;
mod guard;
mod models;
mod normalize;
mod reply;
mod route;
mod schema;

pub use admit::micros_to_usd;

use super::outcome::{Next, Outcome};
use super::session::Session;
use crate::wire::Endpoint;

/// Notes in the record what a streamed answer's checks found (guardrails that fired, a
/// schema violation), once the stream ended.
pub fn note_stream(s: &mut Session<'_>) {
    guard::note_stream(s);
    reply::note_stream_schema(s);
}

/// Runs the phases until one of them decides how the request ends.
pub async fn run(s: &mut Session<'_>) -> Outcome {
    match through_phases(s).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

async fn through_phases(s: &mut Session<'_>) -> Next<Outcome> {
    // Which endpoint, by which method.
    accept::endpoint(s)?;
    // Who is asking, before any body is read.
    authenticate::key(s)?;
    if s.endpoint == Endpoint::Models {
        return Ok(models::list(s));
    }
    // The body, delimited, bounded, read and parsed into a view.
    let mut request = normalize::request(s).await?;
    // The alias's route.
    let route = route::choose(s, &request)?;
    // The key may call it, and its limits and budgets hold the worst case.
    admit::admit(s, &mut request, route)?;
    // The guardrails of the alias and the tenant on what the client sends.
    guard::request(s, &mut request, route)?;
    // The JSON schemas the answer's output must match.
    schema::expect(s, &mut request, route)?;
    if route.log_bodies {
        let redactions = super::body_log::redactions(&s.guardrails);
        s.record.request_body = Some(super::body_log::json_body(&redactions, &request.body));
        s.log_bodies = Some(redactions);
    }
    // An identical or equivalent answer from memory.
    cache::lookup(s, &request, route).await?;
    // The targets in plan order until one answers.
    Ok(forward::forward(s, &request, route).await)
}
