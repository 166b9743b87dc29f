//! Serving one connection: reading requests and routing them to a dialect's endpoints.
//! A connection that opens with the HTTP/2 preface is served as h2c (see [`super::http2`]).

use std::rc::Rc;
use std::sync::Arc;

use monoio::io::IntoPollIo;
use monoio::net::TcpStream;

use super::anthropic;
use super::azure;
use super::bedrock;
use super::config::{MockConfig, RequestKnobs};
use super::dialect::Dialect;
use super::fault::Fault;
use super::gemini;
use super::http2;
use super::last_request::LastRequestSlot;
use super::openai;
use super::peer::Peer;
use super::request::{Connection, Method, ReadError, Request};
use super::respond::{write_json, Next};
use super::responses::{self, StoredResponses};
use super::stats::{Endpoint, MockStats};
use super::wire;

/// What every connection task of a server thread shares.
pub struct ServerContext {
    /// Process-wide defaults.
    pub config: Arc<MockConfig>,
    /// Counters served at `/mock/stats`.
    pub stats: Arc<MockStats>,
    /// Served at `/mock/last-request`.
    pub last_request: Arc<LastRequestSlot>,
    /// Response ids `previous_response_id` may refer to (shared by all threads).
    pub stored_responses: Arc<StoredResponses>,
}

/// Serves requests on `stream` until the client closes it or a response closes it:
/// HTTP/1.1, or HTTP/2 when it starts with the h2c preface.
pub async fn serve_connection(stream: TcpStream, ctx: Rc<ServerContext>) {
    let mut conn = Connection::new(stream);
    match conn.starts_with_h2_preface().await {
        Ok(true) => {
            let (stream, read) = conn.into_parts();
            if let Ok(io) = stream.into_poll_io() {
                http2::serve(http2::Rewind::new(read, io), ctx).await;
            }
            return;
        }
        Ok(false) => {}
        Err(_) => return,
    }
    // `idle-close:MS` on the last request: how long the connection may wait for the next.
    let mut idle_close: Option<u32> = None;
    loop {
        let read = conn.read_request(&ctx.config);
        let read = match idle_close {
            None => read.await,
            Some(ms) => {
                let limit = std::time::Duration::from_millis(u64::from(ms));
                match monoio::time::timeout(limit, read).await {
                    Ok(read) => read,
                    // Closed without a word, as a provider's idle timeout does; a request
                    // already on its way is lost with the connection.
                    Err(_) => {
                        ctx.stats.count_fault(Fault::IdleClose(ms));
                        return;
                    }
                }
            }
        };
        let request = match read {
            Ok(r) => r,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(ReadError::Malformed(msg)) => {
                ctx.stats.count_request(Endpoint::BadRequest);
                let body = Dialect::OpenAi.error_body(400, msg);
                let _ = write_json(&mut Peer::Tcp(&mut conn.stream), 400, &body, false, "").await;
                return;
            }
            Err(ReadError::TooLarge(status)) => {
                ctx.stats.count_request(Endpoint::BadRequest);
                let body = Dialect::OpenAi.error_body(status, "request too large");
                let _ =
                    write_json(&mut Peer::Tcp(&mut conn.stream), status, &body, false, "").await;
                return;
            }
        };
        idle_close = match request.knobs {
            Ok(RequestKnobs {
                fault: Some(Fault::IdleClose(ms)),
                ..
            }) => Some(ms),
            _ => None,
        };
        match handle(&mut Peer::Tcp(&mut conn.stream), request, &ctx).await {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) | Err(_) => return,
        }
    }
}

/// The dialect of a path, for errors answered before routing.
fn dialect_of(path: &str) -> Dialect {
    if path.starts_with("/v1/messages") {
        Dialect::Anthropic
    } else if path.starts_with("/v1beta/") {
        Dialect::Gemini
    } else if path.starts_with("/model/") {
        Dialect::Bedrock
    } else {
        Dialect::OpenAi
    }
}

/// Answers one request, whichever protocol it came in.
pub(super) async fn handle(
    stream: &mut Peer<'_>,
    request: Request,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    ctx.last_request.record(&request);
    let keep_alive = request.keep_alive;
    let knobs = match &request.knobs {
        Ok(k) => *k,
        Err(msg) => {
            ctx.stats.count_request(Endpoint::BadRequest);
            let dialect = dialect_of(&request.path);
            let body = dialect.error_body(400, msg);
            let extra = dialect.error_headers(400);
            return write_json(stream, 400, &body, keep_alive, &extra).await;
        }
    };
    if request.method == Method::Post {
        if let Some(op) = azure::operation(&request.path) {
            return azure::route(stream, &request, op, knobs, ctx).await;
        }
    }
    match (request.method, request.path.as_str()) {
        (Method::Post, "/v1/chat/completions") => openai::chat(stream, &request, knobs, ctx).await,
        (Method::Post, "/v1/embeddings") => openai::embeddings(stream, &request, knobs, ctx).await,
        (Method::Post, "/v1/responses") => responses::create(stream, &request, knobs, ctx).await,
        (Method::Post, "/v1/messages") => anthropic::messages(stream, &request, knobs, ctx).await,
        (Method::Post, "/v1/messages/count_tokens") => {
            anthropic::count_tokens(stream, &request, knobs, ctx).await
        }
        (Method::Post, path) if path.starts_with("/v1beta/models/") => {
            gemini::route(stream, &request, knobs, ctx).await
        }
        (Method::Post, path) if path.starts_with("/model/") => {
            bedrock::route(stream, &request, knobs, ctx).await
        }
        (Method::Get, "/v1/models") => {
            ctx.stats.count_request(Endpoint::Models);
            let data = ctx
                .config
                .models
                .iter()
                .map(|id| wire::ModelInfo {
                    id,
                    object: "model",
                    created: 1_700_000_000,
                    owned_by: "mockllm",
                })
                .collect();
            let body = serde_json::to_vec(&wire::ModelList {
                object: "list",
                data,
            })
            .unwrap_or_default();
            write_json(stream, 200, &body, keep_alive, "").await
        }
        (Method::Get, "/mock/stats") => {
            let body = serde_json::to_vec(&ctx.stats.snapshot()).unwrap_or_default();
            write_json(stream, 200, &body, keep_alive, "").await
        }
        (Method::Get, "/mock/last-request") => match ctx.last_request.to_json() {
            Some(body) => write_json(stream, 200, &body, keep_alive, "").await,
            None => {
                let body = Dialect::OpenAi.error_body(404, "no request received yet");
                write_json(stream, 404, &body, keep_alive, "").await
            }
        },
        _ => {
            ctx.stats.count_request(Endpoint::NotFound);
            let dialect = dialect_of(&request.path);
            let msg = match dialect {
                Dialect::Anthropic => "Not Found".to_string(),
                _ => format!("Unknown request URL: {}", request.path),
            };
            let body = dialect.error_body(404, &msg);
            write_json(stream, 404, &body, keep_alive, &dialect.error_headers(404)).await
        }
    }
}
