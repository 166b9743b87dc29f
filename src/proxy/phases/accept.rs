//! Accept: the request names an endpoint the gateway serves, with the method it takes.

use super::super::outcome::{Next, Outcome};
use super::super::session::Session;
use crate::api::{ApiError, ErrorKind};
use crate::http::{Method, RequestHead};
use crate::wire::Endpoint;

/// Sets the session's endpoint, or refuses an unknown path or a wrong method.
pub fn endpoint(s: &mut Session<'_>) -> Next {
    let endpoint = endpoint_of(&s.head).map_err(|(known, err)| {
        if let Some(e) = known {
            s.set_endpoint(e);
        }
        Outcome::Fail(err)
    })?;
    s.set_endpoint(endpoint);
    client_metadata(s)
}

/// Largest `x-infergate-metadata` value accepted.
const MAX_METADATA_BYTES: usize = 4096;

/// Notes `x-infergate-metadata` (a JSON object of the client's own labels: agent, step,
/// customer...) in the record; a value that is not one, or too large, is refused.
fn client_metadata(s: &mut Session<'_>) -> Next {
    let Some(raw) = s.head.headers.get("x-infergate-metadata") else {
        return Ok(());
    };
    let refuse = |why: &str| {
        let mut e = ApiError::new(
            ErrorKind::InvalidRequest,
            "invalid_metadata",
            format!("x-infergate-metadata {why}."),
        );
        e.param = Some("x-infergate-metadata");
        Outcome::Fail(e)
    };
    if raw.len() > MAX_METADATA_BYTES {
        return Err(refuse(&format!("is over {MAX_METADATA_BYTES} bytes")));
    }
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(v) if v.is_object() => {
            s.record.client_metadata = Some(v);
            Ok(())
        }
        _ => Err(refuse("must be a JSON object")),
    }
}

/// The endpoint a head names, or the error (with the endpoint, when the path was known but
/// the method wrong, so the error comes in its dialect).
fn endpoint_of(head: &RequestHead) -> Result<Endpoint, (Option<Endpoint>, ApiError)> {
    let Some(endpoint) = Endpoint::from_path(head.path()) else {
        return Err((
            None,
            ApiError::new(
                ErrorKind::NotFound,
                "unknown_url",
                format!(
                    "Unknown request URL: {} {}",
                    method_name(head.method),
                    head.path()
                ),
            ),
        ));
    };
    let want = if endpoint == Endpoint::Models {
        Method::Get
    } else {
        Method::Post
    };
    if head.method != want {
        return Err((
            Some(endpoint),
            ApiError::new(
                ErrorKind::MethodNotAllowed,
                "method_not_allowed",
                format!(
                    "{} is not allowed on {}",
                    method_name(head.method),
                    head.path()
                ),
            ),
        ));
    }
    Ok(endpoint)
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Head => "HEAD",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Other => "this method",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(line: &str) -> RequestHead {
        RequestHead::parse(format!("{line}\r\nhost: x\r\n\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn known_paths_with_their_method_are_accepted() {
        let chat = head("POST /v1/chat/completions HTTP/1.1");
        assert_eq!(endpoint_of(&chat).unwrap(), Endpoint::ChatCompletions);
        let models = head("GET /v1/models HTTP/1.1");
        assert_eq!(endpoint_of(&models).unwrap(), Endpoint::Models);
    }

    #[test]
    fn unknown_paths_and_wrong_methods_are_refused_in_the_right_dialect() {
        let (known, err) = endpoint_of(&head("POST /v2/nothing HTTP/1.1")).unwrap_err();
        assert_eq!((known, err.status(), err.code), (None, 404, "unknown_url"));
        let (known, err) = endpoint_of(&head("GET /v1/messages HTTP/1.1")).unwrap_err();
        assert_eq!(known, Some(Endpoint::Messages));
        assert_eq!((err.status(), err.code), (405, "method_not_allowed"));
    }
}
