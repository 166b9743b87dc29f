//! Provider faults through the real binary (issue 16): mockllm injects each one (the
//! `x-mock-fault` header, or `--fault` for every request), OpenAI- and Anthropic-dialect
//! clients call the gateway, whose targets are an OpenAI provider and an Anthropic one (so
//! every fault is seen passed through and translated), streamed and not.
//!
//! Each test checks, besides what the client gets for that fault:
//! - every answer is a well-formed answer or a well-formed error in the client's dialect
//!   (`invariants::well_formed`: status and error JSON, or whole SSE events ending with the
//!   dialect's terminal event or its error event);
//! - every request has exactly one record in the request log (by its request id);
//! - no descriptor is left open once the connections closed (`/proc/PID/fd`, polled until
//!   it settles, against a baseline taken after a warm-up; idle pooled provider connections
//!   are the only slack);
//! - resident memory after the repetitions stays within a stated bound of the baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/invariants.rs"]
mod invariants;

use std::time::{Duration, Instant};

use common::*;
use invariants::{records_for, well_formed, Answer, Baseline, Dialect};

/// The provider key both providers are configured with (mockllm checks one is sent).
const UPSTREAM_KEY: (&str, &str) = ("INFERGATE_TEST_UPSTREAM_KEY", "sk-upstream-test");

/// Idle provider connections a shard may keep per provider (`max_idle_per_shard`): with
/// one shard and two providers, the descriptors a test may end with above its baseline.
const POOLED: usize = 2;
const FD_SLACK: usize = 2 * POOLED;

/// The RSS growth allowed over a test's repetitions.
const RSS_BOUND: u64 = 32 << 20;

/// Which provider a call's alias routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    fn alias(self) -> &'static str {
        match self {
            Provider::OpenAi => "via-openai",
            Provider::Anthropic => "via-anthropic",
        }
    }
}

/// One call's shape: who asks, whom it reaches, streamed or not.
#[derive(Debug, Clone, Copy)]
struct Call {
    client: Dialect,
    provider: Provider,
    stream: bool,
}

/// Every shape: both client dialects, both providers (passthrough and translation), both
/// streamed and whole.
fn every_call() -> Vec<Call> {
    let mut calls = Vec::new();
    for client in [Dialect::OpenAi, Dialect::Anthropic] {
        for provider in [Provider::OpenAi, Provider::Anthropic] {
            for stream in [false, true] {
                calls.push(Call {
                    client,
                    provider,
                    stream,
                });
            }
        }
    }
    calls
}

/// The calls of `every_call` that are streamed (`true`) or not.
fn calls_streamed(stream: bool) -> Vec<Call> {
    every_call()
        .into_iter()
        .filter(|c| c.stream == stream)
        .collect()
}

/// The gateway's config: the two providers (with `provider_extra` set on both) on `mock`,
/// an alias for each, one shard.
fn config(mock_url: &str, provider_extra: &str) -> String {
    let provider = |name: &str, kind: &str| {
        format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{mock_url}\"\napi_key_env = \"{}\"\nforward_headers = [\"x-mock-*\"]\nmax_idle_per_shard = {POOLED}\n{provider_extra}\n\n",
            UPSTREAM_KEY.0
        )
    };
    format!(
        "{}{}[models.via-openai]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}]\n\n[models.via-anthropic]\ntargets = [{{ provider = \"an\", model = \"claude-3-5-haiku\" }}]\n",
        provider("oa", "openai"),
        provider("an", "anthropic")
    )
}

/// A gateway in front of one mockllm, warmed up, with its baseline.
struct Rig {
    mock: Mock,
    g: Gateway,
    base: Baseline,
}

impl Rig {
    /// mockllm with `mock_args`; the gateway with `provider_extra` on both providers.
    fn start(mock_args: &[&str], provider_extra: &str) -> Rig {
        let mut args = vec!["--tokens", "6"];
        args.extend_from_slice(mock_args);
        let mock = Mock::start(&args);
        let g = Gateway::start_with(
            &config(&mock.base_url(), provider_extra),
            Driver::Uring,
            &[UPSTREAM_KEY],
            &[("shards", "1")],
        );
        let rig = Rig {
            base: Baseline::of(&g),
            mock,
            g,
        };
        rig.warm_up()
    }

    /// One good call of each shape (unless the mock fails every request), so the pools,
    /// translators and buffers that live past a request exist before the baseline.
    fn warm_up(mut self) -> Rig {
        let calls = every_call();
        let ids: Vec<String> = calls
            .iter()
            .map(|&c| send(&self.g, c, &[("x-mock-fault", "none")]).0)
            .collect();
        records_for(&self.g, &ids);
        self.base = Baseline::of(&self.g);
        self
    }

    /// Sends each of `calls` `reps` times, all of one repetition at once (each on its own
    /// connection), with `headers`; checks each answer is well formed and hands it to
    /// `expect`; then checks every request was recorded once and returns the records.
    fn run(
        &self,
        calls: &[Call],
        reps: usize,
        headers: &[(&str, &str)],
        expect: impl Fn(Call, &RawResponse, &Answer) + Sync,
    ) -> Vec<serde_json::Value> {
        let mut ids = Vec::new();
        let addr = self.g.addr.as_str();
        for _ in 0..reps {
            let round: Vec<String> = std::thread::scope(|scope| {
                let handles: Vec<_> = calls
                    .iter()
                    .map(|&call| {
                        let expect = &expect;
                        scope.spawn(move || {
                            let (id, r) = send_to(addr, call, headers);
                            let answer = well_formed(call.client, call.stream, &r);
                            expect(call, &r, &answer);
                            id
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|e| {
                            std::panic::resume_unwind(e);
                        })
                    })
                    .collect()
            });
            ids.extend(round);
        }
        records_for(&self.g, &ids)
    }

    /// The invariants after the fault's calls: no descriptor left, memory within bound.
    fn check_resources(&self, what: &str) {
        self.base.assert_no_leaked_fds(FD_SLACK, what);
        self.base.assert_rss_within(RSS_BOUND, what);
    }
}

/// Sends `call` to the gateway with `headers` on a fresh connection; returns the request
/// id it was answered with, and the response.
fn send(g: &Gateway, call: Call, headers: &[(&str, &str)]) -> (String, RawResponse) {
    send_to(&g.addr, call, headers)
}

/// [`send`] to the gateway at `addr`.
fn send_to(addr: &str, call: Call, headers: &[(&str, &str)]) -> (String, RawResponse) {
    let model = call.provider.alias();
    let prompt = "Say hello to the gateway";
    let (path, body, mut extra) = match call.client {
        Dialect::OpenAi => {
            let mut v = serde_json::json!({"model": model, "stream": call.stream,
                "messages": [{"role": "user", "content": prompt}]});
            if call.stream {
                v["stream_options"] = serde_json::json!({"include_usage": true});
            }
            ("/v1/chat/completions", v.to_string(), Vec::new())
        }
        Dialect::Anthropic => (
            "/v1/messages",
            serde_json::json!({"model": model, "stream": call.stream, "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt}]})
            .to_string(),
            vec![("anthropic-version", "2023-06-01")],
        ),
    };
    extra.extend_from_slice(headers);
    let r = post_json(addr, path, &body, &extra);
    let id = r
        .header("x-infergate-request-id")
        .unwrap_or_else(|| panic!("no request id for {call:?}: {} {}", r.head, r.body_str()));
    (id, r)
}

/// Fails unless every record says the request ended with `error`.
fn assert_all_errors(records: &[serde_json::Value], error: &str) {
    for r in records {
        assert_eq!(r["error"], error, "{r}");
    }
}

/// Fails unless `answer` is an error (status or event) and, for an error status, `status`.
fn expect_error(call: Call, answer: &Answer, status: u16) {
    match answer {
        Answer::Error(s, _) => assert_eq!(*s, status, "{call:?}: {answer:?}"),
        Answer::StreamError(_) => {}
        _ => panic!("{call:?}: expected an error, got {answer:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Transport faults
// ---------------------------------------------------------------------------------------

/// A reset before the response head: 502 in the client's dialect, streamed or not.
#[test]
fn reset_before_the_head_is_a_502() {
    let rig = Rig::start(&[], "");
    let records = rig.run(
        &every_call(),
        10,
        &[("x-mock-fault", "reset")],
        |c, _, a| {
            assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}");
        },
    );
    assert!(records.iter().all(|r| r["status"] == 502), "{records:?}");
    // 80 calls; a reset on a pooled connection is also retried once on a fresh one.
    assert!(rig.mock.stats()["faults"]["reset"].as_u64().unwrap() >= 80);
    rig.check_resources("reset");
}

/// The head, then a reset: a whole answer is a 502; a stream already begun ends with the
/// dialect's error event.
#[test]
fn reset_after_the_head() {
    let rig = Rig::start(&[], "");
    let records = rig.run(
        &every_call(),
        10,
        &[("x-mock-fault", "reset-after-head")],
        |c, _, a| {
            if c.stream {
                assert!(matches!(a, Answer::StreamError(_)), "{c:?}: {a:?}");
            } else {
                assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}");
            }
        },
    );
    assert!(
        records.iter().all(|r| r["error"].is_string()),
        "{records:?}"
    );
    assert!(
        rig.mock.stats()["faults"]["reset_after_head"]
            .as_u64()
            .unwrap()
            >= 80
    );
    rig.check_resources("reset-after-head");
}

/// Half the answer, then a reset.
#[test]
fn reset_mid_stream() {
    let rig = Rig::start(&[], "");
    rig.run(
        &every_call(),
        10,
        &[("x-mock-fault", "reset-mid-stream")],
        |c, _, a| {
            if c.stream {
                assert!(matches!(a, Answer::StreamError(_)), "{c:?}: {a:?}");
            } else {
                assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}");
            }
        },
    );
    rig.check_resources("reset-mid-stream");
}

/// No response head at all: the first-byte timeout answers 504.
#[test]
fn stall_before_the_first_byte_is_a_504() {
    let rig = Rig::start(&[], "first_byte_timeout_ms = 300");
    let start = Instant::now();
    let records = rig.run(&every_call(), 2, &[("x-mock-fault", "stall")], |c, _, a| {
        assert!(matches!(a, Answer::Error(504, _)), "{c:?}: {a:?}");
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        records
            .iter()
            .all(|r| r["attempts"][0]["error"] == "first_byte_timeout"),
        "{records:?}"
    );
    rig.check_resources("stall");
}

/// Silence after half the answer: a stream ends with an error event after the idle
/// timeout; a whole answer waits for the call's total timeout.
#[test]
fn stall_mid_stream() {
    let rig = Rig::start(&[], "stream_idle_timeout_ms = 300\ntotal_timeout_ms = 1500");
    let start = Instant::now();
    rig.run(
        &calls_streamed(true),
        2,
        &[("x-mock-fault", "stall-mid-stream")],
        |c, _, a| assert!(matches!(a, Answer::StreamError(_)), "{c:?}: {a:?}"),
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    rig.run(
        &calls_streamed(false),
        1,
        &[("x-mock-fault", "stall-mid-stream")],
        |c, _, a| expect_error(c, a, 504),
    );
    // The gateway hung up on the stalled provider: mockllm saw every stream cancelled.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rig.mock.stats()["streams_cancelled"].as_u64().unwrap() < 8 {
        assert!(Instant::now() < deadline, "{}", rig.mock.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    rig.check_resources("stall-mid-stream");
}

/// A provider that trickles its answer: byte by byte it is still a whole, correct answer;
/// at one byte a second it runs into the call's total timeout.
#[test]
fn slow_drip() {
    let rig = Rig::start(&[], "");
    let normal: Vec<(Call, String)> = every_call()
        .into_iter()
        .map(|c| {
            let (_, r) = send(&rig.g, c, &[("x-mock-tokens", "2")]);
            (c, well_formed(c.client, c.stream, &r).text())
        })
        .collect();
    rig.run(
        &every_call(),
        1,
        &[("x-mock-fault", "drip:1"), ("x-mock-tokens", "2")],
        |c, _, a| {
            assert!(a.is_success(), "{c:?}: {a:?}");
            let want = normal
                .iter()
                .find(|(n, _)| {
                    n.client == c.client && n.provider == c.provider && n.stream == c.stream
                })
                .map(|(_, t)| t.clone())
                .unwrap();
            assert_eq!(a.text(), want, "{c:?}");
        },
    );
    assert_eq!(rig.mock.stats()["faults"]["drip"], 8);
    rig.check_resources("drip:1");
    let slow = Rig::start(&[], "total_timeout_ms = 1500");
    let start = Instant::now();
    slow.run(
        &every_call(),
        1,
        &[("x-mock-fault", "drip:1000")],
        |c, _, a| {
            expect_error(c, a, 504);
        },
    );
    assert!(start.elapsed() < Duration::from_secs(4));
    slow.check_resources("drip:1000");
}

/// A provider host that does not resolve: 502 in the client's dialect, and the request
/// goes to the next target when there is one.
#[test]
fn dns_failure() {
    let mock = Mock::start(&["--tokens", "4"]);
    let cfg = format!(
        "[providers.nowhere]\nkind = \"openai\"\nbase_url = \"http://nonexistent.invalid/v1\"\napi_key_env = \"{key}\"\n\n[providers.nowhere-an]\nkind = \"anthropic\"\nbase_url = \"http://nonexistent.invalid/v1\"\napi_key_env = \"{key}\"\n\n[providers.mock]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"{key}\"\n\n[models.via-openai]\ntargets = [{{ provider = \"nowhere\", model = \"gpt-4o-mini\" }}]\n\n[models.via-anthropic]\ntargets = [{{ provider = \"nowhere-an\", model = \"claude\" }}]\n\n[models.fallback]\ntargets = [{{ provider = \"nowhere\", model = \"gpt-4o-mini\" }}, {{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\n",
        mock.base_url(),
        key = UPSTREAM_KEY.0
    );
    let g = Gateway::start_with(&cfg, Driver::Uring, &[UPSTREAM_KEY], &[("shards", "1")]);
    let rig = Rig {
        base: Baseline::of(&g),
        mock,
        g,
    };
    let records = rig.run(&every_call(), 10, &[], |c, _, a| {
        assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}");
    });
    assert!(
        records
            .iter()
            .all(|r| r["attempts"][0]["error"] == "no_address"),
        "{records:?}"
    );
    for client in [Dialect::OpenAi, Dialect::Anthropic] {
        let body = serde_json::json!({"model": "fallback", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let (path, headers) = match client {
            Dialect::OpenAi => ("/v1/chat/completions", vec![]),
            Dialect::Anthropic => ("/v1/messages", vec![("anthropic-version", "2023-06-01")]),
        };
        let r = post_json(&rig.g.addr, path, &body, &headers);
        assert!(well_formed(client, false, &r).is_success());
        assert_eq!(r.header("x-infergate-provider").as_deref(), Some("mock"));
    }
    rig.check_resources("dns");
}

// ---------------------------------------------------------------------------------------
// Malformed answers
// ---------------------------------------------------------------------------------------

/// A 200 whose JSON is cut in half: 502 `upstream_malformed_response` (passed through) or
/// `untranslatable_response` (translated), never the broken body. Streams are not affected.
#[test]
fn truncated_json_answer_is_a_502() {
    let rig = Rig::start(&[], "");
    let records = rig.run(
        &every_call(),
        10,
        &[("x-mock-fault", "truncated-json")],
        |c, _, a| {
            if c.stream {
                assert!(a.is_success(), "{c:?}: {a:?}");
            } else {
                assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}");
            }
        },
    );
    assert!(
        records
            .iter()
            .filter(|r| r["stream"] == false)
            .all(|r| r["status"] == 502),
        "{records:?}"
    );
    assert_eq!(rig.mock.stats()["faults"]["truncated_json"], 40);
    rig.check_resources("truncated-json");
}

/// A 200 that is an HTML page: 502 in the client's dialect, streamed or not.
#[test]
fn non_json_answer_is_a_502() {
    let rig = Rig::start(&[], "");
    rig.run(
        &every_call(),
        10,
        &[("x-mock-fault", "not-json")],
        |c, _, a| {
            assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}");
        },
    );
    assert_eq!(rig.mock.stats()["faults"]["not_json"], 80);
    rig.check_resources("not-json");
}

/// SSE events that run into each other with garbage lines between them: the client never
/// gets the garbage; its stream ends with an error event.
#[test]
fn malformed_sse_framing_ends_the_stream_with_an_error_event() {
    let rig = Rig::start(&[], "");
    let records = rig.run(
        &calls_streamed(true),
        10,
        &[("x-mock-fault", "bad-sse-framing")],
        |c, _, a| assert!(matches!(a, Answer::StreamError(_)), "{c:?}: {a:?}"),
    );
    assert_all_errors(&records, "upstream_stream_malformed_event");
    assert_eq!(rig.mock.stats()["faults"]["bad_sse_framing"], 40);
    rig.check_resources("bad-sse-framing");
}

/// An event whose JSON is not UTF-8: the client's stream stays UTF-8 and ends with an
/// error event.
#[test]
fn invalid_utf8_in_an_event_ends_the_stream_with_an_error_event() {
    let rig = Rig::start(&[], "");
    let records = rig.run(
        &calls_streamed(true),
        10,
        &[("x-mock-fault", "invalid-utf8-event")],
        |c, _, a| assert!(matches!(a, Answer::StreamError(_)), "{c:?}: {a:?}"),
    );
    assert_all_errors(&records, "upstream_stream_invalid_utf8_event");
    assert_eq!(rig.mock.stats()["faults"]["invalid_utf8_event"], 40);
    rig.check_resources("invalid-utf8-event");
}

/// One event larger than the gateway buffers (8 MiB): the stream ends with an error event,
/// the event is never forwarded, and memory does not grow with repetitions.
#[test]
fn an_event_over_the_buffer_bound_ends_the_stream_and_frees_its_memory() {
    let rig = Rig::start(&[], "");
    // The allocator gives freed pages back as the shard allocates again: normal calls
    // while waiting for the RSS to settle.
    let settle = |limit: u64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            send(&rig.g, every_call()[0], &[]);
            let rss = rss_bytes(rig.base.pid);
            if rss <= limit || Instant::now() > deadline {
                return rss;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut after = Vec::new();
    for round in 0..3 {
        let records = rig.run(
            &calls_streamed(true),
            2,
            &[("x-mock-fault", "oversized-event")],
            |c, r, a| {
                assert!(matches!(a, Answer::StreamError(_)), "{c:?}: {a:?}");
                assert!(
                    r.body.len() < 1 << 20,
                    "{c:?}: {} bytes forwarded",
                    r.body.len()
                );
            },
        );
        assert_all_errors(&records, "upstream_stream_event_too_large");
        // Four streams at once buffer up to 8 MiB each: the allocator may keep that
        // much for reuse, no more, and not more with each round.
        after.push(settle(rig.base.rss + OVERSIZED_RSS_BOUND));
        eprintln!(
            "RSS {} KiB at the baseline, {} KiB after round {round} of 8 oversized events",
            rig.base.rss >> 10,
            after[round] >> 10
        );
    }
    rig.base.assert_no_leaked_fds(FD_SLACK, "oversized-event");
    rig.base
        .assert_rss_within(OVERSIZED_RSS_BOUND, "oversized-event");
    assert!(
        after[2] <= after[0] + (8 << 20),
        "RSS grows with each round: {after:?}"
    );
}

/// What four 8 MiB event buffers at once may leave in the allocator's hands.
const OVERSIZED_RSS_BOUND: u64 = 64 << 20;

/// A stream answered to a request for a whole answer: 502, not a stream the client can't
/// read.
#[test]
fn a_stream_answered_to_a_whole_request_is_a_502() {
    let rig = Rig::start(&[], "");
    rig.run(
        &calls_streamed(false),
        10,
        &[("x-mock-fault", "stream-answer")],
        |c, _, a| assert!(matches!(a, Answer::Error(502, _)), "{c:?}: {a:?}"),
    );
    assert_eq!(rig.mock.stats()["faults"]["stream_answer"], 40);
    rig.check_resources("stream-answer");
}

/// A whole answer to a request for a stream: the client gets it as the stream it asked
/// for, with the same text.
#[test]
fn a_whole_answer_to_a_stream_request_is_sent_as_a_stream() {
    let rig = Rig::start(&[], "");
    rig.run(
        &calls_streamed(true),
        10,
        &[("x-mock-fault", "whole-answer")],
        |c, _, a| {
            assert!(matches!(a, Answer::Stream(_)), "{c:?}: {a:?}");
            assert!(!a.text().is_empty(), "{c:?}: {a:?}");
        },
    );
    assert_eq!(rig.mock.stats()["faults"]["whole_answer"], 40);
    rig.check_resources("whole-answer");
}

// ---------------------------------------------------------------------------------------
// Connection races and storms
// ---------------------------------------------------------------------------------------

/// A provider that closes idle keep-alive connections after 40 ms, without a word: calls
/// spaced around that moment find their pooled connection closing; each is retried on a
/// fresh connection, so every client gets its answer and one attempt is recorded.
#[test]
fn idle_pooled_connections_closed_by_the_provider_are_replaced() {
    let rig = Rig::start(&["--fault", "idle-close:40"], "");
    let calls = every_call();
    let mut ids = Vec::new();
    for i in 0..64 {
        let call = calls[i % calls.len()];
        let (id, r) = send(&rig.g, call, &[]);
        let a = well_formed(call.client, call.stream, &r);
        assert!(
            a.is_success(),
            "call {i} {call:?}: {a:?}\n{}",
            rig.g.stderr()
        );
        ids.push(id);
        // 25 to 55 ms: before, around and after the provider's close.
        std::thread::sleep(Duration::from_millis(25 + (i as u64 * 13) % 31));
    }
    let records = records_for(&rig.g, &ids);
    assert!(
        records
            .iter()
            .all(|r| r["status"] == 200 && r["attempts"].as_array().unwrap().len() == 1),
        "{records:?}"
    );
    let closed = rig.mock.stats()["faults"]["idle_close"].as_u64().unwrap();
    assert!(
        closed >= 10,
        "the provider closed only {closed} idle connections"
    );
    rig.check_resources("idle-close");
}

/// Every request fails with 503 for 1.5 s, then the provider recovers: meanwhile a model
/// with a second target answers from it, one without gets the 503 in its dialect; after
/// the storm (and the ejection's cooldown) the first target serves again.
#[test]
fn a_5xx_storm_fails_over_then_recovers() {
    let storm = Mock::start(&["--tokens", "6", "--fault", "storm:1500"]);
    let calm = Mock::start(&["--tokens", "6"]);
    let provider = |name: &str, kind: &str, url: &str| {
        format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\napi_key_env = \"{}\"\nforward_headers = [\"x-mock-*\"]\nmax_idle_per_shard = {POOLED}\n\n",
            UPSTREAM_KEY.0
        )
    };
    let eject = "eject = { consecutive_failures = 3, cooldown_ms = 300 }";
    let cfg = format!(
        "{}{}{}{}[models.via-openai]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}, {{ provider = \"oa-backup\", model = \"gpt-4o-mini\" }}]\n{eject}\n\n[models.via-anthropic]\ntargets = [{{ provider = \"an\", model = \"claude\" }}, {{ provider = \"an-backup\", model = \"claude\" }}]\n{eject}\n\n[models.solo]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}]\n",
        provider("oa", "openai", &storm.base_url()),
        provider("an", "anthropic", &storm.base_url()),
        provider("oa-backup", "openai", &calm.base_url()),
        provider("an-backup", "anthropic", &calm.base_url()),
    );
    let g = Gateway::start_with(&cfg, Driver::Uring, &[UPSTREAM_KEY], &[("shards", "1")]);
    let rig = Rig {
        base: Baseline::of(&g),
        mock: storm,
        g,
    }
    .warm_up();
    let storm_began = Instant::now();
    rig.run(&every_call(), 3, &[], |c, r, a| {
        assert!(a.is_success(), "{c:?}: {a:?}");
        let by = r.header("x-infergate-provider").unwrap();
        assert!(by.ends_with("-backup"), "{c:?} answered by {by}");
    });
    let mut ids = Vec::new();
    for client in [Dialect::OpenAi, Dialect::Anthropic] {
        let r = post_solo(&rig.g, client);
        let a = well_formed(client, false, &r);
        // Anthropic's status for an overloaded provider is 529.
        assert!(
            matches!(a, Answer::Error(503 | 529, _)),
            "{client:?}: {a:?}"
        );
        ids.push(r.header("x-infergate-request-id").unwrap());
    }
    assert!(
        storm_began.elapsed() < Duration::from_millis(1500),
        "the storm ended before the test looked"
    );
    // After the storm and the cooldown, the first targets answer again.
    std::thread::sleep(Duration::from_millis(1500 + 400).saturating_sub(storm_began.elapsed()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = post_solo(&rig.g, Dialect::OpenAi);
        ids.push(r.header("x-infergate-request-id").unwrap());
        let a = well_formed(Dialect::OpenAi, false, &r);
        if a.is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery for solo: {a:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for call in every_call() {
        loop {
            let (id, r) = send(&rig.g, call, &[]);
            ids.push(id);
            let a = well_formed(call.client, call.stream, &r);
            assert!(a.is_success(), "{call:?}: {a:?}");
            let by = r.header("x-infergate-provider").unwrap();
            if !by.ends_with("-backup") {
                break;
            }
            assert!(Instant::now() < deadline, "{call:?} still answered by {by}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    records_for(&rig.g, &ids);
    assert!(rig.mock.stats()["faults"]["storm"].as_u64().unwrap() >= 3);
    // Four providers here, each with its idle pooled connections.
    rig.base.assert_no_leaked_fds(2 * FD_SLACK, "storm");
    rig.base.assert_rss_within(RSS_BOUND, "storm");
}

/// A whole request to the single-target `solo` model in `client`'s dialect.
fn post_solo(g: &Gateway, client: Dialect) -> RawResponse {
    let body = serde_json::json!({"model": "solo", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    match client {
        Dialect::OpenAi => post_json(&g.addr, "/v1/chat/completions", &body, &[]),
        Dialect::Anthropic => post_json(
            &g.addr,
            "/v1/messages",
            &body,
            &[("anthropic-version", "2023-06-01")],
        ),
    }
}
