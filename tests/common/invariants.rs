//! The invariants a provider-fault test checks of the gateway, whatever the fault: the client
//! gets a well-formed answer or a well-formed error in its own dialect (OpenAI or Anthropic,
//! whole or streamed), every request is recorded, no descriptor is left open once the
//! connections closed, and memory stays within a stated bound.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use super::{Gateway, RawResponse};

/// The client dialects a fault test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// What a well-formed answer turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A whole 2xx answer (its JSON).
    Whole(serde_json::Value),
    /// An error status with the dialect's error JSON (its status and `error` object).
    Error(u16, serde_json::Value),
    /// A 200 stream that ended properly; the events' data, parsed.
    Stream(Vec<serde_json::Value>),
    /// A 200 stream that ended with the dialect's error event (its `error` object).
    StreamError(serde_json::Value),
}

impl Answer {
    /// The error object, for an error status or an error event.
    pub fn error(&self) -> Option<&serde_json::Value> {
        match self {
            Answer::Error(_, e) | Answer::StreamError(e) => Some(e),
            _ => None,
        }
    }

    /// True for a whole answer or a stream that ended properly.
    pub fn is_success(&self) -> bool {
        matches!(self, Answer::Whole(_) | Answer::Stream(_))
    }

    /// The text a successful answer carries (whole or streamed), in either dialect.
    pub fn text(&self) -> String {
        match self {
            Answer::Whole(v) => v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    v["content"]
                        .as_array()
                        .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect())
                })
                .unwrap_or_default(),
            Answer::Stream(events) => events
                .iter()
                .filter_map(|e| {
                    e["choices"][0]["delta"]["content"]
                        .as_str()
                        .or_else(|| e["delta"]["text"].as_str())
                })
                .collect(),
            _ => String::new(),
        }
    }
}

/// Checks that `r` is a well-formed answer or error in `dialect` for a request that asked
/// for a stream (`asked_stream`) or not, and says which it is; fails the test (with the
/// response) otherwise. A 200 is a stream exactly when one was asked for; a stream must be
/// whole SSE events, each one JSON the dialect sends, ending with its terminal event or its
/// error event.
pub fn well_formed(dialect: Dialect, asked_stream: bool, r: &RawResponse) -> Answer {
    let ctx = || {
        format!(
            "{dialect:?} client got:\n{}\n{}",
            r.head,
            String::from_utf8_lossy(&r.body)
        )
    };
    assert!(
        r.header("x-infergate-request-id").is_some(),
        "no request id: {}",
        ctx()
    );
    let streamed = r
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if r.status >= 400 {
        assert!(!streamed, "an error status with a stream: {}", ctx());
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("error body not JSON ({e}): {}", ctx()));
        let error = error_object(dialect, &v).unwrap_or_else(|| panic!("{}", ctx()));
        return Answer::Error(r.status, error);
    }
    assert_eq!(r.status, 200, "{}", ctx());
    assert_eq!(
        streamed,
        asked_stream,
        "asked for a stream: {asked_stream}; {}",
        ctx()
    );
    if !streamed {
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{}", ctx());
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("answer not JSON ({e}): {}", ctx()));
        match dialect {
            Dialect::OpenAi => {
                assert_eq!(v["object"], "chat.completion", "{}", ctx());
                assert!(v["choices"].is_array(), "{}", ctx());
            }
            Dialect::Anthropic => {
                assert_eq!(v["type"], "message", "{}", ctx());
                assert!(v["content"].is_array(), "{}", ctx());
            }
        }
        return Answer::Whole(v);
    }
    let events = sse_events(&r.body).unwrap_or_else(|e| panic!("{e}: {}", ctx()));
    match dialect {
        Dialect::OpenAi => openai_stream(&events),
        Dialect::Anthropic => anthropic_stream(&events),
    }
    .unwrap_or_else(|e| panic!("{e}: {}", ctx()))
}

/// The `error` object of an error body in `dialect`, when it has the dialect's shape: a
/// non-empty `message` and a `type` (Anthropic: inside `{"type":"error","error":…}`).
fn error_object(dialect: Dialect, v: &serde_json::Value) -> Option<serde_json::Value> {
    if dialect == Dialect::Anthropic && v["type"] != "error" {
        return None;
    }
    let e = &v["error"];
    let message_ok = e["message"].as_str().is_some_and(|m| !m.is_empty());
    (message_ok && e["type"].is_string()).then(|| e.clone())
}

/// One SSE event: its `event:` name, if any, and its joined `data:` lines.
#[derive(Debug)]
pub struct SseEvent {
    pub name: Option<String>,
    pub data: String,
}

/// Parses a whole SSE body strictly: UTF-8, every event ends with a blank line, every line
/// is an `event:` or `data:` field (or a `:` comment).
pub fn sse_events(body: &[u8]) -> Result<Vec<SseEvent>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("stream not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with("\n\n") {
        return Err("the stream ends inside an event".into());
    }
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        let mut name = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.split('\n') {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim_start().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            } else if !line.starts_with(':') {
                return Err(format!("not an SSE field line: {line:?}"));
            }
        }
        if data.is_empty() {
            return Err(format!("an event without data: {block:?}"));
        }
        events.push(SseEvent {
            name,
            data: data.join("\n"),
        });
    }
    Ok(events)
}

/// An OpenAI stream: chunks of JSON then `[DONE]`, or an `{"error":…}` chunk (then
/// possibly `[DONE]`).
fn openai_stream(events: &[SseEvent]) -> Result<Answer, String> {
    let mut chunks = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.data == "[DONE]" {
            if i + 1 != events.len() {
                return Err("events after [DONE]".into());
            }
            return Ok(Answer::Stream(chunks));
        }
        let v: serde_json::Value =
            serde_json::from_str(&e.data).map_err(|err| format!("chunk not JSON ({err})"))?;
        if v.get("error").is_some() {
            let error = error_object(Dialect::OpenAi, &v).ok_or("malformed error event")?;
            let rest = &events[i + 1..];
            if !(rest.is_empty() || rest.len() == 1 && rest[0].data == "[DONE]") {
                return Err("events after the error event".into());
            }
            return Ok(Answer::StreamError(error));
        }
        if v["object"] != "chat.completion.chunk" {
            return Err(format!("not a chat.completion.chunk: {v}"));
        }
        chunks.push(v);
    }
    Err("the stream ended without [DONE] or an error event".into())
}

/// An Anthropic stream: named events whose data's `type` is their name, ending with
/// `message_stop`, or an `error` event.
fn anthropic_stream(events: &[SseEvent]) -> Result<Answer, String> {
    let mut seen = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(&e.data).map_err(|err| format!("event not JSON ({err})"))?;
        let name = e.name.as_deref().ok_or("an event without a name")?;
        if name != "ping" && v["type"] != name {
            return Err(format!("event {name} carries type {}", v["type"]));
        }
        let last = i + 1 == events.len();
        match name {
            "error" => {
                let error = error_object(Dialect::Anthropic, &v).ok_or("malformed error event")?;
                return if last {
                    Ok(Answer::StreamError(error))
                } else {
                    Err("events after the error event".into())
                };
            }
            "message_stop" => {
                return if last {
                    Ok(Answer::Stream(seen))
                } else {
                    Err("events after message_stop".into())
                };
            }
            _ => seen.push(v),
        }
    }
    Err("the stream ended without message_stop or an error event".into())
}

/// Waits (at most 10 s) until the request log holds one record for each of `ids` (the
/// `x-infergate-request-id` of each response); fails the test if one is missing or
/// recorded twice. Returns those records in the order of `ids`.
pub fn records_for(g: &Gateway, ids: &[String]) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = g.records();
        let found: Vec<Vec<&serde_json::Value>> = ids
            .iter()
            .map(|id| {
                records
                    .iter()
                    .filter(|r| r["request_id"] == id.as_str())
                    .collect()
            })
            .collect();
        if found.iter().all(|f| f.len() == 1) {
            return found.into_iter().map(|f| f[0].clone()).collect();
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = ids
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.len() != 1)
                .map(|(id, _)| id)
                .collect();
            panic!(
                "{} of {} requests not recorded exactly once: {missing:?}\n{}",
                missing.len(),
                ids.len(),
                g.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Open descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// What each descriptor of `pid` points at (for a failure message).
fn fd_listing(pid: u32) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        out.push_str(&format!(
            "{:?} -> {}\n",
            entry.file_name(),
            target.display()
        ));
    }
    out
}

/// The gateway's descriptors and memory at a quiet moment, to compare with later.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub pid: u32,
    pub fds: usize,
    pub rss: u64,
}

impl Baseline {
    /// Takes the baseline of `g` now (after a warm-up, so lazily opened descriptors and
    /// one-time allocations are in it).
    pub fn of(g: &Gateway) -> Baseline {
        let pid = g.proc.child.id();
        Baseline {
            pid,
            fds: fd_count(pid),
            rss: super::rss_bytes(pid),
        }
    }

    /// Waits (at most 10 s, polling) until the gateway holds at most `slack` descriptors
    /// more than at the baseline: connections the test closed are closed on the gateway's
    /// side too, and nothing it opened for a failed call stayed open. `slack` covers
    /// idle pooled provider connections, which the gateway keeps on purpose.
    pub fn assert_no_leaked_fds(&self, slack: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = fd_count(self.pid);
            if now <= self.fds + slack {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: {now} descriptors open, {} at the baseline (+{slack} allowed):\n{}",
                    self.fds,
                    fd_listing(self.pid)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails unless the gateway's resident memory grew by at most `bound` bytes since the
    /// baseline.
    pub fn assert_rss_within(&self, bound: u64, what: &str) {
        let now = super::rss_bytes(self.pid);
        assert!(
            now <= self.rss + bound,
            "{what}: RSS {} KiB, {} KiB at the baseline (+{} KiB allowed)",
            now >> 10,
            self.rss >> 10,
            bound >> 10
        );
    }
}
