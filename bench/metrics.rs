//! What metrics cost a request on the shard: `ShardMetrics::observe` on a finished record
//! (the shard's uncontended lock, the route table's version check, four label lookups,
//! the counters, four HDR recordings and two attempts), against a goal of 1 µs; and what a
//! scrape costs the admin thread (two shards merged and rendered).
// A bench whose set-up fails must stop loudly, not measure something else.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion};
use infergate::config::Config;
use infergate::observe::metrics::{Format, MetricSources, Metrics};
use infergate::observe::{AttemptRecord, RequestRecord};
use infergate::route::RouteTable;

/// Ten aliases over three providers, three tenants: a fleet's config, small enough to read.
fn table() -> RouteTable {
    let mut cfg = String::from(
        "[providers.openai]\nkind = \"mock\"\n[providers.anthropic]\nkind = \"mock\"\n[providers.backup]\nkind = \"mock\"\n[tenants.acme]\n[tenants.globex]\n[tenants.initech]\n",
    );
    for i in 0..10 {
        cfg.push_str(&format!(
            "[models.\"model-{i}\"]\ntargets = [{{ provider = \"openai\", model = \"up-{i}\" }}, {{ provider = \"backup\", model = \"up-{i}-b\" }}]\n"
        ));
    }
    RouteTable::compile(&Config::parse(&cfg).unwrap()).unwrap()
}

/// A streamed chat request of tenant `acme` that failed over once and was priced.
fn record(alias: usize) -> RequestRecord {
    let mut r = RequestRecord::started("0123456789abcdef0123456789abcdef".into(), 0);
    r.model = Some(format!("model-{alias}"));
    r.provider = Some("backup".into());
    r.upstream_model = Some(format!("up-{alias}-b"));
    r.tenant = Some("acme".into());
    r.status = 200;
    r.stream = true;
    r.latency_ms = 812.4;
    r.ttfb_ms = Some(231.0);
    r.tokens_in = Some(1_200);
    r.tokens_out = Some(256);
    r.tokens_cached = Some(1_024);
    r.cost_usd = Some(0.000_42);
    r.cache = Some("miss");
    r.attempts = vec![
        AttemptRecord {
            provider: "openai".into(),
            model: format!("up-{alias}"),
            status: Some(503),
            error: None,
            latency_ms: 12.3,
            start_ms: 0.2,
        },
        AttemptRecord {
            provider: "backup".into(),
            model: format!("up-{alias}-b"),
            status: Some(200),
            error: None,
            latency_ms: 799.1,
            start_ms: 12.6,
        },
    ];
    r
}

fn metrics(c: &mut Criterion) {
    let table = Arc::new(ArcSwap::from_pointee(table()));
    let m = Metrics::new(2, Arc::clone(&table), MetricSources::default()).unwrap();
    let shard = m.shard(0);
    let records: Vec<RequestRecord> = (0..10).map(record).collect();
    // Every series exists already, as on a shard that has served for a while.
    for r in &records {
        shard.observe(r);
        m.shard(1).observe(r);
    }
    let mut i = 0;
    c.bench_function("observe one finished request", |b| {
        b.iter(|| {
            i = (i + 1) % records.len();
            shard.observe(black_box(&records[i]));
        })
    });
    let mut simple = RequestRecord::started("x".into(), 0);
    simple.model = Some("model-1".into());
    simple.status = 404;
    simple.error = Some("model_not_found".into());
    c.bench_function("observe a refused request (no attempts)", |b| {
        b.iter(|| shard.observe(black_box(&simple)))
    });
    c.bench_function("scrape: merge 2 shards and render (10 aliases)", |b| {
        b.iter(|| black_box(m.render(Format::Prometheus)))
    });
}

criterion_group!(benches, metrics);
criterion_main!(benches);
