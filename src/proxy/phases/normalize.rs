//! Normalize: a body that can be delimited and fits, from a client the browser rule allows,
//! read whole and parsed into the view the later phases use.

use super::super::outcome::{Next, Outcome};
use super::super::session::{ClientRequest, Session};
use crate::api::{ApiError, ErrorKind, RequestBodyError};
use crate::http::{BodyLength, HttpError, Method, RequestHead};
use crate::route::RouteTable;

/// Reads and parses the request body.
pub async fn request(s: &mut Session<'_>) -> Next<ClientRequest> {
    // Framing first: a request whose body can't be delimited is answered and closed
    // before anything else is judged.
    match s.head.body_framing() {
        Err(why) => return Err(Outcome::Refuse(HttpError::Malformed(why))),
        Ok(BodyLength::Length(n)) if n > s.limits.max_body_bytes as u64 => {
            return Err(Outcome::Refuse(HttpError::BodyTooLarge))
        }
        Ok(_) => {}
    }
    if let Some(err) = browser_guard(s.table, &s.head) {
        return Err(Outcome::Fail(err));
    }
    if s.ctx.failpoints {
        failpoint(&s.head);
    }
    let mut permit = s.ctx.bodies.permit();
    let body = match s.conn.read_body(&s.head, s.limits, &mut permit).await {
        Ok(b) => b,
        Err(e) => return Err(Outcome::Refuse(e)),
    };
    s.body_read = true;
    s.record.bytes_in = body.len();
    let parsed = s.ctx.scratch.borrow_mut().parse(s.endpoint, &body);
    let view = parsed.map_err(|e| Outcome::Fail(body_error(&e)))?;
    s.record.model = Some(crate::api::bounded(&view.model));
    s.record.stream = view.stream;
    Ok(ClientRequest { body, view })
}

/// The client's error for a body that does not parse as the endpoint's request.
fn body_error(e: &RequestBodyError) -> ApiError {
    let code = match e {
        RequestBodyError::InvalidJson(_) | RequestBodyError::NotAnObject => "invalid_json",
        RequestBodyError::Missing(_) => "missing_required_parameter",
        RequestBodyError::WrongType { .. } => "invalid_type",
        RequestBodyError::DuplicateKey(_) => "duplicate_key",
    };
    let mut err = ApiError::new(ErrorKind::InvalidRequest, code, e.to_string());
    err.param = e.param();
    err
}

/// In open mode (no gateway keys) the only thing between a web page and the provider keys
/// is the browser's same-origin rule: a page may POST `text/plain` anywhere without asking.
/// So a request that carries a foreign `Origin`, or a POST body that is not JSON (which no
/// browser sends cross-origin without a preflight the gateway never grants), is refused
/// unless `[auth]` allows it.
fn browser_guard(table: &RouteTable, head: &RequestHead) -> Option<ApiError> {
    if !table.keys.is_open() {
        return None;
    }
    let auth = &table.browser;
    if let Some(origin) = head.headers.get("origin") {
        if !auth.origin_allowed(origin) {
            return Some(ApiError::new(
                ErrorKind::PermissionDenied,
                "origin_not_allowed",
                "Requests from web pages are refused while the gateway runs without keys; list the origin in [auth] allowed_origins or configure keys.",
            ));
        }
    }
    if head.method == Method::Post && !auth.any_content_type && !is_json(head) {
        return Some(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported_content_type",
            "Send the body as JSON with 'content-type: application/json'.",
        ));
    }
    None
}

/// Whether the request declares a JSON body (`application/json`, any parameters).
fn is_json(head: &RequestHead) -> bool {
    head.headers.get("content-type").is_some_and(|v| {
        let media = v.split(|&b| b == b';').next().unwrap_or_default();
        media.trim_ascii().eq_ignore_ascii_case(b"application/json")
    })
}

/// Fault injection for the containment tests (only with `INFERGATE_FAILPOINTS=1`):
/// `x-infergate-failpoint: panic` panics inside the request, `kill-shard` panics in a task
/// of its own that nothing catches, as a bug outside any request would, and `wedge-shard`
/// blocks the shard's thread for 3 s, as a blocking call gone wrong would (the liveness
/// probe and the watchdog must notice).
#[allow(clippy::panic)] // Deliberate: these panics are what the containment tests inject.
fn failpoint(head: &RequestHead) {
    match head.headers.get("x-infergate-failpoint") {
        Some(b"panic") => std::panic::panic_any("failpoint: panic inside a request"),
        Some(b"kill-shard") => {
            monoio::spawn(async { std::panic::panic_any("failpoint: panic outside any request") });
        }
        Some(b"wedge-shard") => std::thread::sleep(std::time::Duration::from_secs(3)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn open_table(auth: &str) -> RouteTable {
        RouteTable::compile(&Config::parse(auth).unwrap()).unwrap()
    }

    fn post(extra: &str) -> RequestHead {
        let text = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
        RequestHead::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn open_mode_refuses_foreign_pages_and_non_json_bodies() {
        let table = open_table("");
        let json = "content-type: application/json; charset=utf-8\r\n";
        assert!(browser_guard(&table, &post(json)).is_none());
        let plain = browser_guard(&table, &post("content-type: text/plain\r\n")).unwrap();
        assert_eq!(
            (plain.status(), plain.code),
            (415, "unsupported_content_type")
        );
        let page = format!("{json}origin: https://evil.example\r\n");
        let refused = browser_guard(&table, &post(&page)).unwrap();
        assert_eq!(
            (refused.status(), refused.code),
            (403, "origin_not_allowed")
        );
        let allowed = open_table("[auth]\nallowed_origins = [\"https://app.example\"]\n");
        let page = format!("{json}origin: https://app.example\r\n");
        assert!(browser_guard(&allowed, &post(&page)).is_none());
    }

    #[test]
    fn body_errors_name_their_code_and_parameter() {
        let err = body_error(&RequestBodyError::Missing("model"));
        assert_eq!(
            (err.status(), err.code),
            (400, "missing_required_parameter")
        );
        assert_eq!(err.param, Some("model"));
        assert_eq!(
            body_error(&RequestBodyError::NotAnObject).code,
            "invalid_json"
        );
    }
}
