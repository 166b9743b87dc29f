//! Stream cost per event: one typical text delta translated each way (output buffer reused as
//! the relay reuses it), and the passthrough relay's per-event scan for comparison.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use infergate::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream, SseScanner};

const OPENAI_DELTA: &[u8] = br#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" the quick brown fox"},"logprobs":null,"finish_reason":null}],"usage":null}"#;
const ANTHROPIC_DELTA: &[u8] = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the quick brown fox"}}"#;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_stream");
    g.throughput(Throughput::Elements(1));

    let mut to_anthropic = OpenAiToAnthropicStream::new("claude-sonnet");
    let mut out = Vec::with_capacity(4096);
    // Open the message and the text block first, so the loop measures the steady state.
    let _ = to_anthropic.push_event(None, OPENAI_DELTA, &mut out);
    g.bench_function("openai_chunk_to_anthropic_text_delta", |b| {
        b.iter(|| {
            out.clear();
            let _ = to_anthropic.push_event(None, std::hint::black_box(OPENAI_DELTA), &mut out);
        })
    });

    let mut to_openai = AnthropicToOpenAiStream::new("gpt-4o", true);
    let start = br#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#;
    let _ = to_openai.push_event(Some(b"message_start"), start, &mut out);
    g.bench_function("anthropic_text_delta_to_openai_chunk", |b| {
        b.iter(|| {
            out.clear();
            let _ = to_openai.push_event(
                Some(b"content_block_delta"),
                std::hint::black_box(ANTHROPIC_DELTA),
                &mut out,
            );
        })
    });

    // Passthrough: what the relay does per event when the dialects match: find the event
    // boundary and glance at usage/finish reason; the bytes themselves are forwarded as they are.
    let mut event = Vec::with_capacity(OPENAI_DELTA.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(OPENAI_DELTA);
    event.extend_from_slice(b"\n\n");
    let mut scanner = SseScanner::new();
    g.bench_function("passthrough_scan_openai_chunk", |b| {
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
