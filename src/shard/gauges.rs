//! Publishes what only a shard can read about itself (open connections, requests in flight,
//! idle upstream connections per provider) to its metrics once a second, so the scraper
//! never has to reach into a shard's `Rc` state.

use std::rc::Rc;
use std::time::Duration;

use crate::observe::metrics::ShardGauges;
use crate::proxy::ShardCtx;

/// How often a shard publishes its gauges.
const EVERY: Duration = Duration::from_secs(1);

/// Runs on the shard until the drain begins.
pub async fn publish_gauges(ctx: Rc<ShardCtx>) {
    while !ctx.lifecycle.is_draining() {
        ctx.metrics.publish(read(&ctx));
        monoio::time::sleep(EVERY).await;
    }
}

/// The shard's gauges now.
fn read(ctx: &ShardCtx) -> ShardGauges {
    let table = ctx.table.load();
    let mut idle_upstream: Vec<(String, u64)> = table
        .providers
        .values()
        .map(|p| (p.name.clone(), ctx.pool.idle_count(&p.pool_key) as u64))
        .collect();
    idle_upstream.sort_unstable();
    ShardGauges {
        connections: ctx.connections() as u64,
        inflight: ctx.inflight() as u64,
        streams: 0,
        idle_upstream,
    }
}
