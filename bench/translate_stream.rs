//! Stream cost per event, for every (client format, provider format) pair the gateway
//! translates: one typical text delta through the `Bridge`'s translator, in its steady state
//! (message and block already open), the output buffer reused as the relay reuses it. Pairs
//! that go through the Chat Completions hub run both legs. The passthrough relay's per-event
//! scan is measured beside them: it is what a same-format stream costs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use infergate::translate::{decode_frame, encode_frame, Bridge, SseScanner};
use infergate::wire::WireApi;

const CHAT_DELTA: &[u8] = br#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" the quick brown fox"},"logprobs":null,"finish_reason":null}],"usage":null}"#;
const ANTHROPIC_START: &[u8] = br#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#;
const ANTHROPIC_DELTA: &[u8] = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the quick brown fox"}}"#;
const GEMINI_DELTA: &[u8] = br#"{"candidates":[{"content":{"parts":[{"text":" the quick brown fox"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":25,"candidatesTokenCount":4,"totalTokenCount":29},"modelVersion":"gemini-2.5-flash","responseId":"mEw3aPa9N8XWvdIP"}"#;
const CONVERSE_START: &[u8] =
    br#"{"role":"assistant","p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"}"#;
const CONVERSE_DELTA: &[u8] =
    br#"{"contentBlockIndex":0,"delta":{"text":" the quick brown fox"},"p":"abcdefghijklmnopqrstuvw"}"#;

/// One upstream event of `wire`'s format: its name and payload (Bedrock's also framed).
struct UpstreamEvent {
    name: Option<&'static [u8]>,
    data: &'static [u8],
    /// AWS event-stream frame of the event (Bedrock): decoded per event in the loop.
    frame: Vec<u8>,
}

fn delta(wire: WireApi) -> UpstreamEvent {
    let (name, data): (Option<&'static [u8]>, &'static [u8]) = match wire {
        WireApi::Chat => (None, CHAT_DELTA),
        WireApi::Messages => (Some(b"content_block_delta"), ANTHROPIC_DELTA),
        WireApi::Gemini => (None, GEMINI_DELTA),
        WireApi::Converse => (Some(b"contentBlockDelta"), CONVERSE_DELTA),
        WireApi::Responses => unreachable!("no provider streams Responses to a translator"),
    };
    let mut frame = Vec::new();
    if wire == WireApi::Converse {
        encode_frame(
            &[
                (":event-type", "contentBlockDelta"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            CONVERSE_DELTA,
            &mut frame,
        );
    }
    UpstreamEvent { name, data, frame }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_stream");
    g.throughput(Throughput::Elements(1));
    let clients = [WireApi::Chat, WireApi::Messages, WireApi::Responses];
    let providers = [
        WireApi::Chat,
        WireApi::Messages,
        WireApi::Gemini,
        WireApi::Converse,
    ];
    let mut out = Vec::with_capacity(4096);
    for client in clients {
        for provider in providers {
            let bridge = Bridge::new(client, provider);
            let Ok(Some(mut t)) = bridge.stream("client-model", true, b"{}") else {
                continue; // same format: passthrough, measured below
            };
            // Open the message and the text block, so the loop measures the steady state.
            match provider {
                WireApi::Messages => {
                    let _ = t.push_event(Some(b"message_start"), ANTHROPIC_START, &mut out);
                }
                WireApi::Converse => {
                    let _ = t.push_event(Some(b"messageStart"), CONVERSE_START, &mut out);
                }
                _ => {}
            }
            let ev = delta(provider);
            let _ = t.push_event(ev.name, ev.data, &mut out);
            let id = BenchmarkId::new(
                format!("{client:?}_from_{provider:?}").to_lowercase(),
                "text_delta",
            );
            g.bench_function(id, |b| {
                b.iter(|| {
                    out.clear();
                    if ev.frame.is_empty() {
                        let _ = t.push_event(ev.name, std::hint::black_box(ev.data), &mut out);
                    } else if let Ok(Some((frame, _))) =
                        decode_frame(std::hint::black_box(&ev.frame))
                    {
                        let _ = t.push_event(ev.name, frame.payload(), &mut out);
                    }
                })
            });
        }
    }

    // Passthrough: what the relay does per event when the formats match: find the event
    // boundary and glance at usage/finish reason; the bytes themselves are forwarded as they are.
    let mut event = Vec::with_capacity(CHAT_DELTA.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(CHAT_DELTA);
    event.extend_from_slice(b"\n\n");
    let mut scanner = SseScanner::new();
    g.bench_function("passthrough_scan_chat_chunk", |b| {
        b.iter(|| {
            let n = scanner.scan(std::hint::black_box(&event));
            scanner.consumed(n);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
