//! What governance costs a request on the shard: the key's model allow-list, the price
//! lookups of a route's target, and one admission (key and tenant, each with request and
//! token limits and a budget: compare-and-swaps on atomics) settled on its usage; the same
//! with an agent run's budget added, and a run's step bookkeeping. The scenario in
//! BENCHMARKS.md measures the same path end to end (`scenario --governance`).
// A bench whose set-up or admission fails must stop loudly, not measure something else.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use infergate::config::PriceConfig;
use infergate::policy::{
    AccessProfile, Ask, BudgetRule, Fingerprint, Governor, GovernorRules, KeyRules, Limits,
    LocalGovernor, Prices, ProfileParts, RunRegistry, RunRules, Used, Window,
};

fn limits() -> Limits {
    Limits {
        // The largest limits a bucket holds (one unit a nanosecond): a bench loop never
        // runs out, yet every admission takes from and settles into real buckets.
        rpm: Some(60_000_000_000),
        tpm: Some(60_000_000_000),
        budget: Some(BudgetRule {
            cap_micros: u64::MAX / 4,
            per: Window::Day,
        }),
    }
}

fn governance(c: &mut Criterion) {
    let governor = LocalGovernor::new(&GovernorRules {
        tenants: vec![("acme".into(), limits())],
        keys: vec![KeyRules {
            name: "bot".into(),
            tenant: Some("acme".into()),
            limits: limits(),
        }],
    })
    .unwrap();
    let prices = Prices::compile(std::iter::empty::<(&String, &PriceConfig)>()).unwrap();
    let price = prices.get("gpt-4o-mini").unwrap().price;
    let models = vec!["gpt-4o-mini".to_string(), "claude-*".to_string()];
    let meta = BTreeMap::new();
    let parts = ProfileParts {
        models: Some(&models),
        region: Some("eu"),
        metadata: Some(&meta),
    };
    let profile = AccessProfile::compile("bot", &parts, Some(("acme", &parts))).unwrap();
    let ask = Ask {
        key: "bot",
        prompt_tokens: 1_200,
        max_output_tokens: Some(256),
        output_cap: Some(16_384),
        min_output_tokens: 16,
        price: Some(price),
        run: None,
    };
    let used = Used {
        tokens: 300,
        cost_micros: 100,
    };
    let mut g = c.benchmark_group("governance");
    g.bench_function("allow_list_and_price", |b| {
        b.iter(|| {
            black_box(profile.allows(black_box("gpt-4o-mini")).is_ok());
            black_box(prices.get(black_box("gpt-4o-mini-2024-07-18")).is_some())
        })
    });
    g.bench_function("admit_settle_key_and_tenant", |b| {
        b.iter(|| {
            let a = governor.admit(black_box(&ask), governor.now()).unwrap();
            black_box(governor.settle(a, used, governor.now()))
        })
    });
    let runs = RunRegistry::default();
    let rules = Some(RunRules {
        max_steps: Some(u64::MAX),
        max_usd_micros: Some(u64::MAX / 4),
        ..RunRules::default()
    });
    g.bench_function("run_step_and_run_budget", |b| {
        b.iter(|| {
            let now = governor.now();
            let ticket = runs
                .begin("acme", "run-1", rules, Fingerprint::default(), now)
                .unwrap();
            let with_run = Ask {
                run: ticket.run().budget.as_ref(),
                ..ask
            };
            let a = governor.admit(&with_run, now).unwrap();
            let s = governor.settle(a, used, now);
            ticket.used(used.tokens, s.cost_micros);
            black_box(s)
        })
    });
    g.finish();
}

criterion_group!(benches, governance);
criterion_main!(benches);
