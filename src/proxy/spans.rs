//! Hands a finished request's spans to the tracer, with what the route table knows of each
//! provider the record names (its kind for `gen_ai.provider.name`, its host and port).

use super::session::Session;
use crate::observe::trace::ProviderInfo;
use crate::route::RouteTable;

/// Queues the request's spans when it is sampled (a no-op otherwise).
pub fn end(s: &Session<'_>) {
    s.ctx
        .tracer
        .end(&s.trace, &s.record, |name| provider_info(s.table, name));
}

/// The provider named `name` in `table`, as spans describe it.
fn provider_info<'t>(table: &'t RouteTable, name: &str) -> Option<ProviderInfo<'t>> {
    let p = table.providers.get(name)?;
    Some(ProviderInfo {
        kind: p.kind,
        addr: p.addr.as_ref().map(|a| (a.host.as_str(), a.port)),
    })
}
