//! Accept: the request names an endpoint the gateway serves, with the method it takes.

use super::super::outcome::{Next, Outcome};
use super::super::session::Session;
use crate::api::{ApiError, ErrorKind};
use crate::http::Method;
use crate::wire::Endpoint;

/// Sets the session's endpoint, or refuses an unknown path or a wrong method.
pub fn endpoint(s: &mut Session<'_>) -> Next {
    let Some(endpoint) = Endpoint::from_path(s.head.path()) else {
        return Err(Outcome::Fail(ApiError::new(
            ErrorKind::NotFound,
            "unknown_url",
            format!(
                "Unknown request URL: {} {}",
                method_name(s.head.method),
                s.head.path()
            ),
        )));
    };
    s.set_endpoint(endpoint);
    let want = if endpoint == Endpoint::Models {
        Method::Get
    } else {
        Method::Post
    };
    if s.head.method != want {
        return Err(Outcome::Fail(ApiError::new(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            format!(
                "{} is not allowed on {}",
                method_name(s.head.method),
                s.head.path()
            ),
        )));
    }
    Ok(())
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Head => "HEAD",
        Method::Other => "this method",
    }
}
