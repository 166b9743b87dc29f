//! What tracing costs a shard per request at `sample_ratio = 1.0`: reading the client's
//! `traceparent` and drawing ids when the head arrives (`begin`), one `traceparent` per
//! provider attempt, and turning the finished record into span descriptions pushed on the
//! exporter's queue (`end`). The queue is drained between timed chunks, off the clock, as
//! the exporter thread drains it off the shard. Goal: under 5 µs per request.
//!
//! The `export` group times the exporter thread's part: a batch of [`EXPORT_BATCH`] queued
//! requests turned into the protobuf body it posts (criterion's throughput: per request).
// A bench whose set-up fails must stop loudly, not measure something else.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use infergate::config::ProviderKind;
use infergate::http::RequestHead;
use infergate::observe::trace::{
    spans_dropped, BatchEncoder, ProviderInfo, RequestSpans, TraceContext, Tracer,
};
use infergate::observe::{AttemptRecord, RequestRecord};

/// A head as an OpenAI SDK sends it, with a `traceparent`.
fn head() -> RequestHead {
    let text = "POST /v1/chat/completions HTTP/1.1\r\n\
        host: 127.0.0.1:8080\r\n\
        accept: application/json\r\n\
        content-type: application/json\r\n\
        user-agent: OpenAI/Python 1.54.0\r\n\
        x-stainless-lang: python\r\n\
        x-stainless-package-version: 1.54.0\r\n\
        x-stainless-os: Linux\r\n\
        x-stainless-arch: x64\r\n\
        authorization: Bearer sk-gw-0123456789abcdef\r\n\
        traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
        content-length: 180\r\n\r\n";
    RequestHead::parse(text.as_bytes()).unwrap()
}

/// A finished record with `attempts` attempts (the last one answered).
fn record(cx: &TraceContext, attempts: usize) -> RequestRecord {
    let mut r = RequestRecord::started("5f0c4c2e9b8a4d7e8f1a2b3c4d5e6f70".into(), 0);
    r.trace_id = cx.trace_id;
    r.status = 200;
    r.model = Some("gpt-4o-mini".into());
    r.provider = Some("backup".into());
    r.upstream_model = Some("gpt-4o-mini-2024-07-18".into());
    r.tokens_in = Some(812);
    r.tokens_out = Some(96);
    r.latency_ms = 412.5;
    for i in 0..attempts {
        r.attempts.push(AttemptRecord {
            provider: if i + 1 == attempts {
                "backup"
            } else {
                "primary"
            }
            .into(),
            model: "gpt-4o-mini-2024-07-18".into(),
            status: Some(if i + 1 == attempts { 200 } else { 503 }),
            error: None,
            latency_ms: 200.0,
            start_ms: 0.2 + 200.0 * i as f64,
        });
    }
    r
}

fn provider(name: &str) -> Option<ProviderInfo<'static>> {
    Some(ProviderInfo {
        kind: if name == "primary" {
            ProviderKind::Openai
        } else {
            ProviderKind::AzureOpenai
        },
        addr: Some(("api.openai.com", 443)),
    })
}

/// Requests timed between two drains of the queue: fewer than it holds, so every push in
/// the timed part succeeds (the drop path is cheaper and must not be what is measured).
const CHUNK: u64 = 1024;

/// Times `iters` runs of `f`, draining the queue between chunks outside the timed part (as
/// the exporter thread would, off the shard).
fn timed(rx: &Receiver<RequestSpans>, iters: u64, mut f: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        total += t.elapsed();
        done += n;
        while let Ok(spans) = rx.try_recv() {
            drop(black_box(spans));
        }
    }
    total
}

fn tracing(c: &mut Criterion) {
    let (tracer, queue) = Tracer::with_queue(2 * CHUNK as usize, 1.0);
    let head = head();
    let dropped = spans_dropped();
    let mut g = c.benchmark_group("tracing");
    g.bench_function("begin (traceparent in, ids, sampling)", |b| {
        b.iter(|| black_box(tracer.begin(black_box(&head.headers))))
    });
    let cx = tracer.begin(&head.headers);
    g.bench_function("attempt traceparent", |b| {
        b.iter(|| black_box(cx.traceparent(cx.attempt_span_id(black_box(0)))))
    });
    for attempts in [1, 2] {
        let r = record(&cx, attempts);
        g.bench_function(
            format!("end ({attempts} attempt(s): spans built and queued)"),
            |b| {
                b.iter_custom(|iters| {
                    timed(&queue, iters, |_| tracer.end(&cx, black_box(&r), provider))
                })
            },
        );
        g.bench_function(
            format!("request ({attempts} attempt(s)): begin + traceparents + end"),
            |b| {
                b.iter_custom(|iters| {
                    timed(&queue, iters, |_| {
                        let cx = tracer.begin(black_box(&head.headers));
                        for i in 0..attempts {
                            black_box(cx.traceparent(cx.attempt_span_id(i)));
                        }
                        tracer.end(&cx, black_box(&r), provider);
                    })
                })
            },
        );
    }
    let off = Tracer::off();
    g.bench_function("off: begin (trace id for the record only)", |b| {
        b.iter(|| black_box(off.begin(black_box(&head.headers))))
    });
    g.finish();
    // Must be 0: the bench measured the queued path, not the cheaper drop path.
    eprintln!(
        "spans dropped during the bench (queue full): {}",
        spans_dropped() - dropped
    );
}

/// Requests in one timed export batch (the exporter posts at most 512 spans at once: 256
/// requests of two spans, or about 170 of three).
const EXPORT_BATCH: usize = 256;

fn export(c: &mut Criterion) {
    let (tracer, queue) = Tracer::with_queue(EXPORT_BATCH, 1.0);
    let head = head();
    let mut encoder = BatchEncoder::new("infergate");
    let mut g = c.benchmark_group("export");
    g.throughput(Throughput::Elements(EXPORT_BATCH as u64));
    for attempts in [1, 2] {
        // What the queue holds under load: every request its own trace and ids.
        let batch: Vec<RequestSpans> = (0..EXPORT_BATCH)
            .map(|_| {
                let cx = tracer.begin(&head.headers);
                tracer.end(&cx, &record(&cx, attempts), provider);
                queue.try_recv().unwrap()
            })
            .collect();
        let bytes = encoder.encode(&batch).len();
        eprintln!("export body, {attempts} attempt(s): {bytes} bytes for {EXPORT_BATCH} requests");
        g.bench_function(
            format!("encode ({attempts} attempt(s), {EXPORT_BATCH} requests a batch)"),
            |b| b.iter(|| black_box(encoder.encode(black_box(&batch)).len())),
        );
    }
    g.finish();
}

criterion_group!(benches, tracing, export);
criterion_main!(benches);
