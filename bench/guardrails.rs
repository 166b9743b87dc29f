//! Guardrails scan cost with every built-in rule on: a typical 10 KB request text (prose,
//! code and JSON, no findings; and the same with a few secrets and PII in it), one typical
//! SSE text delta (20-80 bytes) through the stream scanner in its steady state, and a
//! 48-byte delta of a long base64 run (where the scanner's runs stay open longest); one
//! typical delta event of each client dialect (Chat, Messages, Responses) through the
//! relay's `GuardedStream` (parse, scan, write), and a 10 KB chat body through `scan_body`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use infergate::config::{GuardrailAction, GuardrailConfig, GuardrailSide};
use infergate::guardrails::{
    scan_body, Detector, GuardedStream, GuardrailPolicy, RuleSpec, StreamScanner,
};
use infergate::translate::StreamTranslator;
use infergate::wire::WireApi;
use std::hint::black_box;

const PROSE: &str = "The quick brown fox jumps over the lazy dog while the team reviews the \
quarterly report. Revenue grew 12% to $4.2M in Q3 2024, driven by the new API tier (v2.14.0). \
Please summarize the key risks, and list three follow-up tasks for the task-list by Friday. ";
const CODE: &str = "fn main() {\n    let items = vec![1, 2, 3];\n    for (i, x) in items.iter().enumerate() {\n        println!(\"{i}: {x}\");\n    }\n}\n";
const JSON: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello! Can you help me plan a trip to Lisbon in May?"}],"temperature":0.7,"request_id":"3f2b8c1e-7d4a-4e9b-9a61-2c5d8e0f1a37"}"#;

fn typical_text(len: usize) -> String {
    let mut s = String::with_capacity(len + 512);
    while s.len() < len {
        s.push_str(PROSE);
        s.push_str(CODE);
        s.push_str(JSON);
        s.push('\n');
    }
    s.truncate(len);
    s
}

fn with_findings(len: usize) -> String {
    let mut s = typical_text(len - 400);
    s.push_str("\nmy key is sk-proj-4fJ2kQ9xL0pZ7vB3nT8yR1wE6uI5oP2aS9dF3gH7jK0lZ4xC8vB1nM and mail me at jane.doe@example.com or call +44 20 7946 0958. Card 4111 1111 1111 1111, AWS AKIAQNRXK7ORD3HNG57Y.\n");
    s.push_str(&typical_text(400 - (s.len() - (len - 400))));
    s
}

const DELTAS: [&str; 6] = [
    " the quick brown fox",
    " jumps over the lazy dog, and then",
    " Here is a summary of the report: revenue grew 12% year",
    " over year.",
    " Let me know if you'd like me to expand on any of these points or draft an email.",
    "\n\n1. **Risks**:",
];

fn bench(c: &mut Criterion) {
    let det = match Detector::new(&RuleSpec::all_builtin()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("guardrails: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("guardrails");

    let clean = typical_text(10 * 1024);
    assert!(
        det.find(&clean).is_empty(),
        "the typical text has no findings"
    );
    let dirty = with_findings(10 * 1024);
    assert!(
        det.find(&dirty).len() >= 4,
        "the text with findings has them"
    );
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("find_10k_clean", |b| b.iter(|| det.find(black_box(&clean))));
    g.throughput(Throughput::Bytes(dirty.len() as u64));
    g.bench_function("find_10k_with_findings", |b| {
        b.iter(|| det.find(black_box(&dirty)))
    });
    g.bench_function("find_and_redact_10k_with_findings", |b| {
        b.iter(|| {
            let f = det.find(black_box(&dirty));
            det.redact(&dirty, &f)
        })
    });

    // One delta per iteration, cycling through typical deltas; the output buffer is reused
    // the way a relay reuses it.
    g.throughput(Throughput::Elements(1));
    let mut scanner = StreamScanner::new(&det);
    let mut out = String::with_capacity(4096);
    let mut i = 0usize;
    g.bench_function("stream_delta", |b| {
        b.iter(|| {
            i = (i + 1) % DELTAS.len();
            out.clear();
            let delta = DELTAS.get(i).copied().unwrap_or_default();
            black_box(scanner.push(black_box(delta), &mut out))
        })
    });

    // A long base64 run (an image or a blob in a tool result): after each `+` or `/` an
    // email's local part can start and stay open for 64 bytes.
    let mut rng = fastrand::Rng::with_seed(1);
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let blob: Vec<String> = (0..64)
        .map(|_| {
            (0..48)
                .map(|_| char::from(B64.get(rng.usize(..64)).copied().unwrap_or(b'A')))
                .collect()
        })
        .collect();
    let mut scanner = StreamScanner::new(&det);
    let mut j = 0usize;
    g.bench_function("stream_delta_base64", |b| {
        b.iter(|| {
            j = (j + 1) % blob.len();
            out.clear();
            let delta = blob.get(j).map(String::as_str).unwrap_or_default();
            black_box(scanner.push(black_box(delta), &mut out))
        })
    });

    // The request path's cost: a 10 KB chat body (JSON walked, every text decoded and
    // scanned) under one policy with every built-in rule.
    let policy = GuardrailPolicy::compile(
        "all",
        &GuardrailConfig {
            rules: vec!["secrets".into(), "pii".into()],
            action: GuardrailAction::Redact,
            on: vec![GuardrailSide::Request],
            custom: Vec::new(),
        },
    )
    .map(Arc::new);
    let policy = match policy {
        Ok(p) => p,
        Err(e) => {
            eprintln!("guardrails: {e}");
            return;
        }
    };
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": PROSE},
            {"role": "user", "content": typical_text(10 * 1024 - 600)},
        ],
    })
    .to_string();
    let policies = [policy];
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("scan_body_10k_clean", |b| {
        b.iter(|| scan_body(black_box(&policies), black_box(body.as_bytes())))
    });

    // A guarded stream, per event: one typical text delta event in the client's dialect
    // (cycling through the deltas above) through `GuardedStream` in passthrough, with the
    // policy redacting every rule; the output buffer reused as the relay reuses it.
    g.throughput(Throughput::Elements(1));
    for client in [WireApi::Chat, WireApi::Messages, WireApi::Responses] {
        let events: Vec<(Option<&'static [u8]>, Vec<u8>)> = DELTAS
            .iter()
            .enumerate()
            .map(|(n, d)| delta_event(client, d, n))
            .collect();
        let hits = Rc::new(RefCell::new(Vec::new()));
        let mut guard = GuardedStream::new(None, client, policies.to_vec(), hits);
        let mut out = Vec::with_capacity(4096);
        let mut k = 0usize;
        g.bench_function(
            BenchmarkId::new("guarded_stream_event", dialect(client)),
            |b| {
                b.iter(|| {
                    k = (k + 1) % events.len();
                    out.clear();
                    if let Some((name, data)) = events.get(k) {
                        let _ = guard.push_event(*name, black_box(data), &mut out);
                    }
                    black_box(out.len())
                })
            },
        );
    }
    g.finish();
}

fn dialect(client: WireApi) -> &'static str {
    match client {
        WireApi::Messages => "messages",
        WireApi::Responses => "responses",
        _ => "chat",
    }
}

/// A text delta event as a provider (or the gateway's translator) writes it in `client`'s
/// dialect, with its event name.
fn delta_event(client: WireApi, text: &str, n: usize) -> (Option<&'static [u8]>, Vec<u8>) {
    let text = serde_json::to_string(text).unwrap_or_default();
    match client {
        WireApi::Messages => (
            Some(b"content_block_delta"),
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#).into_bytes(),
        ),
        WireApi::Responses => (
            Some(b"response.output_text.delta"),
            format!(r#"{{"type":"response.output_text.delta","sequence_number":{n},"item_id":"msg_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5e2e3c","output_index":0,"content_index":0,"delta":{text},"logprobs":[]}}"#).into_bytes(),
        ),
        _ => (
            None,
            format!(r#"{{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_06737a9306","choices":[{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#).into_bytes(),
        ),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
