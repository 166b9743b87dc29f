//! Publishes what only a shard can read about itself (open connections, requests in flight,
//! idle upstream connections per provider) to its metrics once a second, and its view of
//! the targets' health to the route state's board every quarter second when it changed, so
//! the scraper and the admin listener never have to reach into a shard's `Rc` state.

use std::rc::Weak;
use std::time::Duration;

use crate::observe::metrics::ShardGauges;
use crate::proxy::ShardCtx;
use crate::route::Publish;

/// How often a shard publishes its gauges.
const EVERY: Duration = Duration::from_secs(1);
/// How often a shard publishes its targets' health when it changed without a change of
/// state (those are published at once): failure counts, latency averages.
const HEALTH_EVERY: Duration = Duration::from_millis(250);

/// Runs on the shard until the drain begins or the shard's context is gone. It holds the
/// context only weakly: a task still sleeping when the shard's runtime ends must not keep
/// the context (and with it the request log's sender) alive, or the log writer would never
/// see the last sender go and the process would not exit.
pub async fn publish_gauges(ctx: Weak<ShardCtx>) {
    loop {
        match ctx.upgrade() {
            Some(ctx) if !ctx.lifecycle.is_draining() => ctx.metrics.publish(read(&ctx)),
            _ => return,
        }
        monoio::time::sleep(EVERY).await;
    }
}

/// Runs on the shard like [`publish_gauges`], whether metrics are on or not: publishes the
/// shard's [`RouteHealth`](crate::route::RouteHealth) when anything in it changed.
pub async fn publish_health(ctx: Weak<ShardCtx>) {
    loop {
        match ctx.upgrade() {
            Some(ctx) if !ctx.lifecycle.is_draining() => {
                let table = ctx.table.load();
                ctx.health
                    .publish(&table.state.board, ctx.shard_id, Publish::AnyChange);
            }
            _ => return,
        }
        monoio::time::sleep(HEALTH_EVERY).await;
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
