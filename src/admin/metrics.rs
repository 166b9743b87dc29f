//! `GET /metrics` on the admin listener: the shards' metrics merged, in the Prometheus text
//! format or OpenMetrics (when the scraper's `Accept` asks for it). With metrics off the
//! path is unknown (404), like any other.

use bytes::Bytes;

use super::server::AdminInfo;
use crate::http::{Method, RequestHead};
use crate::observe::metrics::Format;

/// The scrape's answer (status, content type, body), or `None` when the request is not a
/// scrape or metrics are off.
pub fn answer(head: &RequestHead, info: &AdminInfo) -> Option<(u16, &'static str, Bytes)> {
    if head.method != Method::Get || head.path() != "/metrics" {
        return None;
    }
    let metrics = info.metrics.as_ref()?;
    let format = Format::from_accept(head.headers.get("accept"));
    Some((
        200,
        format.content_type(),
        Bytes::from(metrics.render(format)),
    ))
}
