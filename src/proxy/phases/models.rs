//! `GET /v1/models`: the aliases the route table serves, answered by the gateway itself.

use super::super::outcome::{Outcome, Response};
use super::super::session::Session;

/// The model list as prepared when the table was compiled.
pub fn list(s: &mut Session<'_>) -> Outcome {
    let body = s.table.models_json.clone();
    let head = s
        .response_head(200)
        .header("content-type", b"application/json");
    Outcome::Respond(Box::new(Response::full(200, head, body)))
}
