//! The HTTP upstream: a request head with the provider's credentials (a key header or
//! an AWS SigV4 signature), sent on a pooled HTTP/1.1 connection or a new one, or, for a
//! provider with `http2`, on the shard's shared HTTP/2 connection (see [`super::h2call`]).

use std::io::Write as _;

use monoio_rustls::TlsConnector;

use super::call::{Upstream, UpstreamRequest, UpstreamResponse};
use super::client::{read_response_head, send_request, COPY_LIMIT};
use super::conn::connect;
use super::error::UpstreamError;
use super::h2call;
use super::pool::ConnPool;
use super::registry::{UpstreamLink, UpstreamRegistry};
use crate::config::AuthStyle;
use crate::wire::WireApi;

/// Calls real providers from one shard.
pub struct HttpUpstream<'a> {
    pool: &'a ConnPool,
    tls: &'a TlsConnector,
    registry: &'a UpstreamRegistry,
}

impl<'a> HttpUpstream<'a> {
    /// Calls through the shard's `pool`, with `tls` for providers without their own CA
    /// file, reaching providers through their `registry` links.
    pub fn new(pool: &'a ConnPool, tls: &'a TlsConnector, registry: &'a UpstreamRegistry) -> Self {
        Self {
            pool,
            tls,
            registry,
        }
    }
}

impl Upstream for HttpUpstream<'_> {
    /// A pooled connection (a stale one is replaced by the next, or a new one, without
    /// counting an attempt), the request, the response head.
    async fn call(&self, req: &UpstreamRequest<'_>) -> Result<UpstreamResponse, UpstreamError> {
        let provider = req.provider;
        let link = self
            .registry
            .link(&provider.pool_key)
            .ok_or(UpstreamError::NoLink)?;
        let mut head = request_head(req, &link);
        if provider.http2.is_some() {
            let pool = self.pool.h2();
            // Boxed: the HTTP/2 exchange's state would otherwise make every HTTP/1.1 call's
            // future as large as itself, and that future is moved and polled per request.
            let exchange = Box::pin(h2call::call(pool, provider, &link, &head, &req.body));
            if let Some(response) = exchange.await? {
                return Ok(response);
            }
            // The provider chose HTTP/1.1 in ALPN: on with it below.
        }
        let mut pooled = self.pool.take(&provider.pool_key);
        loop {
            let was_pooled = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => connect(provider, &link, self.tls).await?,
            };
            // The head is lent, not cloned: a stale connection's retry sends it again.
            let sent = send_request(&mut conn, &mut head, req.body.parts()).await;
            let result = match sent {
                Ok(_) => read_response_head(&mut conn, provider.first_byte_timeout, false).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(head) => return Ok(UpstreamResponse { head, conn }),
                Err(e) if was_pooled && e.stale_connection() => {
                    tracing::debug!(provider = %provider.name, "stale pooled connection; reconnecting");
                    pooled = self.pool.take(&provider.pool_key);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Lets the path be written as text straight into the head's bytes.
struct PathOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for PathOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The request head sent to the provider, credentials included.
pub(crate) fn request_head(req: &UpstreamRequest<'_>, link: &UpstreamLink) -> Vec<u8> {
    let provider = req.provider;
    // Room for the body too when `send_request` will copy it behind the head, so that
    // copy does not grow the buffer.
    let body = if req.body.len() <= COPY_LIMIT {
        req.body.len()
    } else {
        0
    };
    let mut h = Vec::with_capacity(512 + body);
    let authority = provider.addr.as_ref().map_or("", |a| a.authority.as_str());
    h.extend_from_slice(b"POST ");
    provider.write_request_path(
        &mut PathOut(&mut h),
        req.endpoint,
        req.wire,
        req.model,
        req.stream,
    );
    let _ = write!(
        h,
        " HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        req.body.len()
    );
    let passed = client_headers(req, &mut h);
    if let Some(trace) = &req.trace {
        h.extend_from_slice(b"traceparent: ");
        h.extend_from_slice(&trace.traceparent);
        h.extend_from_slice(b"\r\n");
    }
    if let Some(key) = link.api_key() {
        let name: &[u8] = match provider.auth_style() {
            AuthStyle::Bearer | AuthStyle::SigV4 => b"authorization: Bearer ",
            AuthStyle::XApiKey => b"x-api-key: ",
            AuthStyle::AzureApiKey => b"api-key: ",
            AuthStyle::GoogApiKey => b"x-goog-api-key: ",
        };
        h.extend_from_slice(name);
        h.extend_from_slice(key.as_bytes());
        h.extend_from_slice(b"\r\n");
    } else if provider.auth_style() == AuthStyle::SigV4 {
        let path = provider.request_path(req.endpoint, req.wire, req.model, req.stream);
        sign_aws(req, link, &mut h, authority, &path);
    }
    if req.wire == WireApi::Messages && !passed.anthropic_version {
        h.extend_from_slice(b"anthropic-version: 2023-06-01\r\n");
    }
    if !passed.accept && req.wire != WireApi::Converse {
        h.extend_from_slice(if req.stream {
            b"accept: text/event-stream\r\n"
        } else {
            b"accept: application/json\r\n"
        });
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// Which defaults the client's own headers already cover.
struct PassedHeaders {
    accept: bool,
    anthropic_version: bool,
}

/// Copies the client headers the provider's allow-list admits; dialect-specific headers
/// (`anthropic-*`, `openai-*`) only reach a provider of the client's family.
fn client_headers(req: &UpstreamRequest<'_>, h: &mut Vec<u8>) -> PassedHeaders {
    let client = req.endpoint.client_wire();
    let pass_anthropic = client == Some(WireApi::Messages) && req.wire == WireApi::Messages;
    let openai_family = |w: Option<WireApi>| matches!(w, Some(WireApi::Chat | WireApi::Responses));
    let pass_openai = openai_family(client) && openai_family(Some(req.wire)) || client.is_none();
    let mut passed = PassedHeaders {
        accept: false,
        anthropic_version: false,
    };
    let headers = req.client_headers;
    for (name, value) in headers.iter() {
        if !req.provider.forward_headers.allows(name) || headers.has_token("connection", name) {
            continue;
        }
        if req.trace.is_some_and(|t| replaced_trace_header(name, t)) {
            continue;
        }
        let starts = |p: &str| {
            name.get(..p.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(p))
        };
        if (!pass_anthropic && starts("anthropic-")) || (!pass_openai && starts("openai-")) {
            continue;
        }
        passed.accept |= name.eq_ignore_ascii_case("accept");
        passed.anthropic_version |= name.eq_ignore_ascii_case("anthropic-version");
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
    }
    passed
}

/// Whether the gateway's own trace context replaces the client's `name` header: its
/// `traceparent` always, its `tracestate` when the trace was not the client's.
fn replaced_trace_header(name: &str, trace: super::call::TraceHeaders) -> bool {
    name.eq_ignore_ascii_case("traceparent")
        || (!trace.tracestate && name.eq_ignore_ascii_case("tracestate"))
}

/// Adds AWS SigV4 headers for a Bedrock call (`authorization`, `x-amz-date`, and the
/// session token of temporary credentials). The signed headers are the host and the content
/// type; the body hash covers the exact bytes sent.
fn sign_aws(
    req: &UpstreamRequest<'_>,
    link: &UpstreamLink,
    h: &mut Vec<u8>,
    authority: &str,
    path: &str,
) {
    let provider = req.provider;
    let (Some(creds), Some(region)) = (link.aws(), &provider.region) else {
        return;
    };
    let body = req.body.contiguous();
    match super::sigv4::sign_headers(
        creds,
        region,
        "bedrock",
        "POST",
        authority,
        path,
        &[("content-type", "application/json")],
        &body,
        std::time::SystemTime::now(),
    ) {
        Ok(headers) => {
            for (name, value) in headers {
                h.extend_from_slice(name.as_bytes());
                h.extend_from_slice(b": ");
                h.extend_from_slice(value.as_bytes());
                h.extend_from_slice(b"\r\n");
            }
        }
        Err(e) => tracing::warn!(provider = %provider.name, error = %e, "request not signed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;
    use crate::http::RequestHead;
    use crate::route::Provider;
    use crate::upstream::{TraceHeaders, UpstreamBody};
    use crate::wire::Endpoint;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const OURS: &[u8; 55] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";

    /// The head sent to an OpenAI provider for a client that sent `traceparent` and
    /// `tracestate`, with the gateway's `trace` headers.
    fn head_with(trace: Option<TraceHeaders>) -> String {
        let cfg = ProviderConfig::openai_for_tests("http://127.0.0.1:9/v1");
        let provider = Provider::compile("p", &cfg).unwrap();
        let link = UpstreamLink::build(&provider).unwrap();
        let client = RequestHead::parse(
            format!("POST /v1/chat/completions HTTP/1.1\r\ntraceparent: {CLIENT}\r\ntracestate: vendor=1\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let req = UpstreamRequest {
            provider: &provider,
            endpoint: Endpoint::ChatCompletions,
            wire: WireApi::Chat,
            model: "m",
            stream: false,
            client_headers: &client.headers,
            body: UpstreamBody::default(),
            trace,
        };
        String::from_utf8(request_head(&req, &link)).unwrap()
    }

    #[test]
    fn the_gateways_traceparent_replaces_the_clients() {
        let ours = std::str::from_utf8(OURS).unwrap();
        let continued = head_with(Some(TraceHeaders {
            traceparent: *OURS,
            tracestate: true,
        }));
        assert_eq!(continued.matches("traceparent").count(), 1, "{continued}");
        assert!(continued.contains(&format!("traceparent: {ours}\r\n")));
        assert!(continued.contains("tracestate: vendor=1\r\n"));
        // A trace the gateway started: the client's tracestate belongs to another trace.
        let restarted = head_with(Some(TraceHeaders {
            traceparent: *OURS,
            tracestate: false,
        }));
        assert!(!restarted.contains("tracestate"), "{restarted}");
        assert!(restarted.contains(&format!("traceparent: {ours}\r\n")));
        // Tracing off: the client's headers pass as any allowed header.
        let off = head_with(None);
        assert!(off.contains(&format!("traceparent: {CLIENT}\r\n")), "{off}");
        assert!(off.contains("tracestate: vendor=1\r\n"));
    }
}
