//! Schema: what the answer's output must match. The alias's `json_schema` and, unless the
//! alias turns it off, the schema the client asks for (Chat `response_format`, Responses
//! `text.format`, Messages `output_config.format`). A client schema that does not compile
//! is a 400. With `buffer_stream`, a streamed call is asked of the provider whole, so its
//! output is checked (and retried) before the client sees a byte.

use bytes::Bytes;
use serde_json::Value;

use super::super::outcome::{Next, Outcome};
use super::super::session::{ClientRequest, Session};
use crate::api::{ApiError, ErrorKind};
use crate::guardrails::schema::{requested_schema, RequestedSchema};
use crate::route::ModelRoute;

/// Collects the schemas the answer must match.
pub fn expect(s: &mut Session<'_>, request: &mut ClientRequest, route: &ModelRoute) -> Next {
    let Some(client) = s.endpoint.client_wire() else {
        return Ok(());
    };
    let rules = &route.output;
    if rules.enforce_requested && request.view.structured_output {
        let asked = requested_schema(client, &request.body)
            .map_err(|why| Outcome::Fail(invalid_schema(why)))?;
        if let RequestedSchema::Schema(schema) = asked {
            let compiled = s.ctx.validators.borrow_mut().get_or_compile(&schema);
            let compiled = compiled.map_err(|e| Outcome::Fail(invalid_schema(e.to_string())))?;
            s.schemas.push(compiled);
        }
    }
    if let Some(schema) = &rules.schema {
        s.schemas.push(schema.clone());
    }
    if !s.schemas.is_empty() && request.view.stream && rules.buffer_stream {
        ask_whole(s, request)?;
    }
    Ok(())
}

/// Rewrites a streamed request as a whole one (`stream: false`, no `stream_options`); the
/// answer is sent as a stream once checked.
fn ask_whole(s: &mut Session<'_>, request: &mut ClientRequest) -> Next {
    let include_usage = request.view.include_usage;
    let mut v: Value = serde_json::from_slice(&request.body).map_err(|_| {
        Outcome::Fail(ApiError::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            "The request body is not valid JSON.",
        ))
    })?;
    if let Some(o) = v.as_object_mut() {
        o.insert("stream".into(), Value::Bool(false));
        o.remove("stream_options");
    }
    let body = Bytes::from(v.to_string());
    let view = s.ctx.scratch.borrow_mut().parse(s.endpoint, &body);
    match view {
        Ok(view) => *request = ClientRequest { body, view },
        Err(_) => {
            return Err(Outcome::Fail(ApiError::new(
                ErrorKind::Internal,
                "internal_error",
                "The request could not be rewritten for a buffered stream.",
            )))
        }
    }
    s.replay_stream = Some(include_usage);
    Ok(())
}

fn invalid_schema(why: String) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "invalid_json_schema",
        format!("The structured-output schema can't be used: {why}."),
    )
}
