//! Writing the gateway's own responses, and the per-request facts every record starts from.

use std::time::Instant;

use bytes::Bytes;

use crate::api::ApiError;
use crate::http::{write_head_and_body, BodyFraming, ResponseHead, ServerConn};
use crate::observe::RequestRecord;
use crate::wire::{Endpoint, WireApi};

/// Facts about a request known before it is forwarded.
pub struct RequestMeta {
    /// `x-infergate-request-id`.
    pub request_id: String,
    /// When the head was read.
    pub started: Instant,
    start_unix_ms: u64,
    /// Which shard.
    pub shard: usize,
    /// The gateway key's name.
    pub key: Option<String>,
    /// The alias asked for.
    pub model: Option<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// The format of the client's error bodies.
    pub dialect: WireApi,
}

impl RequestMeta {
    /// Starts the clock and draws a request id.
    pub fn new(shard: usize) -> Self {
        let start_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            request_id: format!("{:032x}", fastrand::u128(..)),
            started: Instant::now(),
            start_unix_ms,
            shard,
            key: None,
            model: None,
            stream: false,
            dialect: WireApi::Chat,
        }
    }

    /// A record with what is known now; the caller fills in the rest.
    pub fn base_record(&self, endpoint: Endpoint, status: u16) -> RequestRecord {
        RequestRecord {
            request_id: self.request_id.clone(),
            time: crate::observe::rfc3339_millis(self.start_unix_ms),
            shard: self.shard,
            endpoint: endpoint.as_str(),
            key: self.key.clone(),
            model: self.model.clone(),
            provider: None,
            upstream_model: None,
            attempts: Vec::new(),
            stream: self.stream,
            status,
            error: None,
            latency_ms: super::ms_since(self.started),
            ttfb_ms: None,
            tokens_in: None,
            tokens_out: None,
            finish_reason: None,
            cache: None,
            cache_similarity: None,
            cache_note: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The record of a request the gateway refused itself.
    pub fn record_for_error(
        &self,
        endpoint: Endpoint,
        err: &ApiError,
        bytes_in: usize,
    ) -> RequestRecord {
        let mut r = self.base_record(endpoint, err.status());
        r.error = Some(err.code.to_string());
        r.bytes_in = bytes_in;
        r
    }

    /// Starts a response head with the gateway's headers.
    pub fn head(&self, status: u16) -> ResponseHead {
        ResponseHead::new(Vec::with_capacity(512), status)
            .header("x-infergate-request-id", self.request_id.as_bytes())
    }
}

/// Writes an error in the client's dialect.
pub async fn write_error(
    conn: &mut ServerConn,
    meta: &RequestMeta,
    err: &ApiError,
    keep_alive: bool,
) -> std::io::Result<()> {
    write_error_with(conn, meta, err, keep_alive, &[]).await
}

/// Writes an error in the client's dialect with `extra` headers (`retry-after`).
pub async fn write_error_with(
    conn: &mut ServerConn,
    meta: &RequestMeta,
    err: &ApiError,
    keep_alive: bool,
    extra: &[(&str, &[u8])],
) -> std::io::Result<()> {
    let body = err.to_json(meta.dialect);
    let mut head = meta
        .head(err.status())
        .header("content-type", b"application/json");
    for (name, value) in extra {
        head = head.header(name, value);
    }
    let head = head.finish(BodyFraming::Length(body.len()), keep_alive);
    write_head_and_body(conn.io(), head, body).await.map(|_| ())
}

/// Writes a JSON response with the gateway's headers plus `extra`.
pub async fn write_json(
    conn: &mut ServerConn,
    meta: &RequestMeta,
    status: u16,
    body: Bytes,
    keep_alive: bool,
    extra: &[(&str, &[u8])],
) -> std::io::Result<()> {
    let mut head = meta
        .head(status)
        .header("content-type", b"application/json");
    for (n, v) in extra {
        head = head.header(n, v);
    }
    let head = head.finish(BodyFraming::Length(body.len()), keep_alive);
    write_head_and_body(conn.io(), head, body).await.map(|_| ())
}
