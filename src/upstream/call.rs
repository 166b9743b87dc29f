//! The one way the forward phase talks to a provider: an [`Upstream`] takes an
//! [`UpstreamRequest`] and answers an [`UpstreamResponse`] (a response head and a connection
//! to read the body from) or an [`UpstreamError`] that says whether to try elsewhere.
//! The HTTP client and the built-in mock both implement it, so everything after the call
//! (retries, translation, the cache, the response, the record) is the same for both.

use std::borrow::Cow;

use bytes::Bytes;
use monoio_rustls::TlsConnector;

use super::client::UpstreamResponseHead;
use super::conn::UpstreamConn;
use super::error::UpstreamError;
use super::http::HttpUpstream;
use super::mock::MockUpstream;
use super::pool::ConnPool;
use super::registry::UpstreamRegistry;
use crate::config::ProviderKind;
use crate::http::HeaderList;
use crate::route::Provider;
use crate::wire::{Endpoint, WireApi};

/// A request body as up to three slices (the client's bytes around a spliced-in model name,
/// or one translated body), so an unchanged body is never copied.
#[derive(Debug, Clone, Default)]
pub struct UpstreamBody {
    parts: [Bytes; 3],
    len: usize,
}

impl UpstreamBody {
    /// One body in one piece.
    pub fn whole(body: Bytes) -> Self {
        let len = body.len();
        Self {
            parts: [body, Bytes::new(), Bytes::new()],
            len,
        }
    }

    /// A body sent as three consecutive slices.
    pub fn spliced(parts: [Bytes; 3]) -> Self {
        let len = parts.iter().map(Bytes::len).sum();
        Self { parts, len }
    }

    /// The slices, in order.
    pub fn parts(&self) -> &[Bytes; 3] {
        &self.parts
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no body.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body as one slice (copied only when it is spliced): for signatures and the mock.
    pub fn contiguous(&self) -> Cow<'_, [u8]> {
        let [a, b, c] = &self.parts;
        if b.is_empty() && c.is_empty() {
            Cow::Borrowed(a)
        } else {
            Cow::Owned([a.as_ref(), b, c].concat())
        }
    }
}

/// What one attempt sends to one target.
pub struct UpstreamRequest<'a> {
    /// The provider, as the route table describes it.
    pub provider: &'a Provider,
    /// The client's endpoint.
    pub endpoint: Endpoint,
    /// The format the provider is spoken to in.
    pub wire: WireApi,
    /// The provider's model name.
    pub model: &'a str,
    /// Whether a stream is asked for.
    pub stream: bool,
    /// The client's headers (the provider's allow-list picks what passes).
    pub client_headers: &'a HeaderList,
    /// The body, already in the provider's format.
    pub body: UpstreamBody,
    /// The trace context this attempt sends in place of the client's (`None`: tracing is
    /// off and the client's `traceparent` passes as any allowed header).
    pub trace: Option<TraceHeaders>,
}

/// The W3C trace headers of one attempt when the gateway takes part in the trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceHeaders {
    /// `00-{trace id}-{the attempt's span id}-{flags}`.
    pub traceparent: [u8; 55],
    /// Whether the client's `tracestate` belongs to this trace (it continued the client's
    /// `traceparent`) and is passed on.
    pub tracestate: bool,
}

/// A provider's answer: its head, and the connection its body is read from.
pub struct UpstreamResponse {
    /// The response head.
    pub head: UpstreamResponseHead,
    /// Where the body comes from (and where it goes back to the pool afterwards).
    pub conn: UpstreamConn,
}

/// Something that answers requests the way a provider does.
///
/// Futures here are `!Send` by design: a shard serves its requests on one thread.
#[allow(async_fn_in_trait)]
pub trait Upstream {
    /// Sends the request and reads the response head.
    async fn call(&self, request: &UpstreamRequest<'_>) -> Result<UpstreamResponse, UpstreamError>;
}

/// The upstream that serves one provider on this shard: the HTTP client for real providers,
/// the built-in mock for `kind = "mock"`.
pub enum ProviderUpstream<'a> {
    /// A provider over HTTP/1.1 (plain or TLS) through the shard's pool, or over its shared
    /// HTTP/2 connection.
    Http(HttpUpstream<'a>),
    /// The built-in mock, answering from memory.
    Mock(MockUpstream),
}

impl<'a> ProviderUpstream<'a> {
    /// The upstream for `provider`, using the shard's `pool` and default `tls` client and
    /// the process's `registry` of provider links.
    pub fn for_provider(
        provider: &Provider,
        pool: &'a ConnPool,
        tls: &'a TlsConnector,
        registry: &'a UpstreamRegistry,
    ) -> Self {
        if provider.kind == ProviderKind::Mock {
            ProviderUpstream::Mock(MockUpstream)
        } else {
            ProviderUpstream::Http(HttpUpstream::new(pool, tls, registry))
        }
    }
}

impl Upstream for ProviderUpstream<'_> {
    async fn call(&self, request: &UpstreamRequest<'_>) -> Result<UpstreamResponse, UpstreamError> {
        match self {
            ProviderUpstream::Http(h) => h.call(request).await,
            ProviderUpstream::Mock(m) => m.call(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_body_is_joined_only_when_asked() {
        let b = UpstreamBody::spliced([
            Bytes::from_static(b"{\"model\":"),
            Bytes::from_static(b"\"m\""),
            Bytes::from_static(b"}"),
        ]);
        assert_eq!(b.len(), 13);
        assert_eq!(&*b.contiguous(), b"{\"model\":\"m\"}");
        let w = UpstreamBody::whole(Bytes::from_static(b"{}"));
        assert!(matches!(w.contiguous(), Cow::Borrowed(_)));
    }
}
