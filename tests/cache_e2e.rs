//! The response caches through the real binary, with the real MiniLM model on the CPU:
//! a miss, an exact hit (also replayed as a stream), a semantic hit on a paraphrase, and
//! misses for the same question from another tenant, under another system prompt, after
//! another conversation history, and for a look-alike that needs another answer.
//! The model comes from scripts/fetch-model.sh (run by the test command).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

fn model_dir() -> String {
    std::env::var("INFERGATE_MODEL_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2").to_string()
    })
}

fn chat(system: &str, history: &[(&str, &str)], question: &str, stream: bool) -> String {
    let mut messages = vec![serde_json::json!({"role": "system", "content": system})];
    for (role, content) in history {
        messages.push(serde_json::json!({"role": role, "content": content}));
    }
    messages.push(serde_json::json!({"role": "user", "content": question}));
    serde_json::json!({"model": "gpt-4o-mini", "stream": stream, "messages": messages, "temperature": 0}).to_string()
}

both_drivers!(miss_exact_semantic_and_scoped_misses, |d| {
    let dir = model_dir();
    assert!(
        std::path::Path::new(&dir)
            .join("model.safetensors")
            .exists(),
        "model files missing in {dir}: run scripts/fetch-model.sh"
    );
    let m = Mock::start(&["--tokens", "6"]);
    let cfg = format!(
        r#"
[auth]
keys = [{{ name = "tenant-a", sha256 = "{a}" }}, {{ name = "tenant-b", sha256 = "{b}" }}]

[embedder]
model_dir = "{dir}"
backend = "cpu"
max_wait_us = 200
# A loaded CI machine must not turn the paraphrase's semantic hit into a deadline bypass.
lookup_timeout_ms = 10000

[providers.p]
kind = "openai"
base_url = "{url}"

[models."gpt-4o-mini"]
targets = [{{ provider = "p", model = "gpt-4o-mini" }}]

[models."gpt-4o-mini".cache]
exact = true
semantic = true
ttl_s = 600
"#,
        a = infergate::policy::sha256_hex("key-a"),
        b = infergate::policy::sha256_hex("key-b"),
        url = m.base_url(),
    );
    let g = Gateway::start(&cfg, d);
    let upstream = || {
        m.stats()["requests"]["chat"].as_u64().unwrap()
            + m.stats()["requests"]["chat_stream"].as_u64().unwrap_or(0)
    };
    let send = |key: &str, body: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("authorization", format!("Bearer {key}"))];
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = post_json(&g.addr, "/v1/chat/completions", body, &h);
        assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
        r
    };
    let sys = "You are a concise geography assistant.";
    let q = "What is the capital of Canada?";

    // 1. Miss: goes upstream.
    let first = send("key-a", &chat(sys, &[], q, false), &[]);
    assert_eq!(first.header("x-infergate-cache").as_deref(), Some("miss"));
    assert_eq!(upstream(), 1);

    // 2. Exact hit, whatever the key order and spacing.
    let v: serde_json::Value = serde_json::from_str(&chat(sys, &[], q, false)).unwrap();
    let reordered = format!(
        "{{ \"temperature\" : 0, \"messages\": {}, \"model\": \"gpt-4o-mini\", \"stream\": false }}",
        v["messages"]
    );
    let hit = send("key-a", &reordered, &[]);
    assert_eq!(hit.header("x-infergate-cache").as_deref(), Some("hit"));
    assert_eq!(hit.json()["choices"], first.json()["choices"]);
    assert_eq!(upstream(), 1);

    // 3. The same request streamed: replayed from the cache as a well-formed stream.
    let streamed = send("key-a", &chat(sys, &[], q, true), &[]);
    assert_eq!(streamed.header("x-infergate-cache").as_deref(), Some("hit"));
    let text = streamed.body_str();
    assert!(
        text.starts_with("data: ") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    let content: String = text
        .split("\n\n")
        .filter(|e| e.starts_with("data: {"))
        .map(|e| serde_json::from_str::<serde_json::Value>(&e[6..]).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        content,
        first.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    assert_eq!(upstream(), 1);

    // 4. A paraphrase: a semantic hit, with its similarity.
    let para = send(
        "key-a",
        &chat(sys, &[], "Which city is the capital of Canada?", false),
        &[],
    );
    assert_eq!(
        para.header("x-infergate-cache").as_deref(),
        Some("semantic"),
        "{}",
        g.stderr()
    );
    let sim: f32 = para
        .header("x-infergate-cache-similarity")
        .unwrap()
        .parse()
        .unwrap();
    assert!(sim > 0.85 && sim < 1.0, "{sim}");
    assert_eq!(upstream(), 1);

    // 5. The same paraphrase from another tenant: a miss.
    let other = send(
        "key-b",
        &chat(sys, &[], "Which city is the capital of Canada?", false),
        &[],
    );
    assert_eq!(other.header("x-infergate-cache").as_deref(), Some("miss"));
    assert_eq!(upstream(), 2);

    // 6. Another system prompt: a miss.
    let r = send(
        "key-a",
        &chat("You are a pirate. Answer in pirate speak.", &[], q, false),
        &[],
    );
    assert_eq!(r.header("x-infergate-cache").as_deref(), Some("miss"));
    assert_eq!(upstream(), 3);

    // 7. Another conversation history: a miss.
    let history = [
        ("user", "I am planning a trip to Australia."),
        ("assistant", "Great, how can I help?"),
    ];
    let r = send("key-a", &chat(sys, &history, q, false), &[]);
    assert_eq!(r.header("x-infergate-cache").as_deref(), Some("miss"));
    assert_eq!(upstream(), 4);

    // 8. A look-alike that needs another answer: a miss.
    let r = send(
        "key-a",
        &chat(sys, &[], "What is the capital of Australia?", false),
        &[],
    );
    assert_eq!(r.header("x-infergate-cache").as_deref(), Some("miss"));
    assert_eq!(upstream(), 5);

    // 9. Skip and refresh on request.
    let r = send(
        "key-a",
        &chat(sys, &[], q, false),
        &[("x-infergate-cache", "skip")],
    );
    assert_eq!(r.header("x-infergate-cache").as_deref(), Some("skip"));
    let r = send(
        "key-a",
        &chat(sys, &[], q, false),
        &[("x-infergate-cache", "refresh")],
    );
    assert_eq!(r.header("x-infergate-cache").as_deref(), Some("refresh"));
    assert_eq!(upstream(), 7);

    // The records say what the cache did.
    let recs = g.wait_records(11);
    let kinds: Vec<&str> = recs
        .iter()
        .map(|r| r["cache"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        kinds,
        ["miss", "hit", "hit", "semantic", "miss", "miss", "miss", "miss", "skip", "refresh"]
            [..kinds.len().min(10)]
    );
    assert!(recs[3]["cache_similarity"].as_f64().unwrap() > 0.85);
});

#[test]
fn without_a_model_the_gateway_serves_and_says_why() {
    let m = Mock::start(&[]);
    let cfg = format!(
        "[embedder]\nmodel_dir = \"/nonexistent/model\"\n\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n[models.m.cache]\nexact = true\nsemantic = true\n",
        m.base_url()
    );
    let g = Gateway::start(&cfg, Driver::Uring);
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(&g.addr, "/v1/chat/completions", body, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-infergate-cache").as_deref(), Some("miss"));
    let r = post_json(&g.addr, "/v1/chat/completions", body, &[]);
    assert_eq!(
        r.header("x-infergate-cache").as_deref(),
        Some("hit"),
        "the exact cache works without a model"
    );
    assert!(g.stderr().contains("semantic cache off"), "{}", g.stderr());
}
