//! Dialects through the real binary: Anthropic Messages clients (the official `anthropic`
//! SDK) against OpenAI and Anthropic providers, and OpenAI clients (the official `openai`
//! SDK) against an Anthropic provider, streaming and tool calls included. Providers are
//! mockllm, which speaks both dialects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

fn config(kind: &str, url: &str) -> String {
    format!(
        r#"
[auth]
keys = [{{ name = "t", sha256 = "{}" }}]

[providers.up]
kind = "{kind}"
base_url = "{url}"
api_key_env = "INFERGATE_TEST_UPSTREAM_KEY"

[models."claude"]
targets = [{{ provider = "up", model = "upstream-model" }}]

[models."gpt-4o-mini"]
targets = [{{ provider = "up", model = "upstream-model" }}]
"#,
        infergate::policy::sha256_hex("gw")
    )
}

fn run_script(script: &str, g: &Gateway) {
    run_python_check(g, script, &[("INFERGATE_KEY", "gw")]);
}

const KEY: (&str, &str) = ("INFERGATE_TEST_UPSTREAM_KEY", "sk-upstream-test");

both_drivers!(anthropic_sdk_to_an_openai_provider, |d| {
    let m = Mock::start(&["--tokens", "8"]);
    let g = Gateway::start_with_env(&config("openai", &m.base_url()), d, &[KEY]);
    run_script("anthropic_sdk_check.py", &g);
    // Upstream got OpenAI Chat Completions with the provider key.
    let last = m.last_request();
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["headers"]["authorization"], "Bearer sk-upstream-test");
});

both_drivers!(anthropic_sdk_to_an_anthropic_provider, |d| {
    let m = Mock::start(&["--tokens", "8"]);
    let g = Gateway::start_with_env(&config("anthropic", &m.base_url()), d, &[KEY]);
    run_script("anthropic_sdk_check.py", &g);
    let last = m.last_request();
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["headers"]["x-api-key"], "sk-upstream-test");
    assert!(last["headers"]["anthropic-version"].is_string());
});

both_drivers!(openai_sdk_to_an_anthropic_provider, |d| {
    let m = Mock::start(&["--tokens", "8"]);
    let g = Gateway::start_with_env(&config("anthropic", &m.base_url()), d, &[KEY]);
    run_script("openai_tools_check.py", &g);
    let last = m.last_request();
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["body"]["model"], "upstream-model");
});

both_drivers!(anthropic_client_against_the_builtin_mock, |d| {
    let cfg = "[providers.m]\nkind = \"mock\"\n\n[models.\"claude\"]\ntargets = [{ provider = \"m\", model = \"mock\" }]\n";
    let g = Gateway::start(cfg, d);
    let body = r#"{"model":"claude","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(
        &g.addr,
        "/v1/messages",
        body,
        &[("anthropic-version", "2023-06-01")],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.json()["type"], "message");
    let body = r#"{"model":"claude","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(&g.addr, "/v1/messages", body, &[]);
    let text = r.body_str();
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
    // count_tokens is estimated when the target cannot count.
    let r = post_json(
        &g.addr,
        "/v1/messages/count_tokens",
        r#"{"model":"claude","messages":[{"role":"user","content":"hello world"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    // Anthropic-shaped errors.
    let r = post_json(
        &g.addr,
        "/v1/messages",
        r#"{"model":"claude","messages":[]}"#,
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
});

both_drivers!(responses_client_against_the_builtin_mock, |d| {
    let cfg = "[providers.m]\nkind = \"mock\"\n\n[models.\"gpt-4o-mini\"]\ntargets = [{ provider = \"m\", model = \"mock\" }]\n";
    let g = Gateway::start(cfg, d);
    let r = post_json(
        &g.addr,
        "/v1/responses",
        r#"{"model":"gpt-4o-mini","input":"Hello!"}"#,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["output"][0]["type"], "message");
    assert!(!v["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .is_empty());
    let r = post_json(
        &g.addr,
        "/v1/responses",
        r#"{"model":"gpt-4o-mini","input":"Hello!","stream":true}"#,
        &[],
    );
    let text = r.body_str();
    assert!(text.starts_with("event: response.created"), "{text}");
    assert!(text.contains("event: response.completed"), "{text}");
    // Missing `input`: an OpenAI-shaped 400 naming it.
    let r = post_json(&g.addr, "/v1/responses", r#"{"model":"gpt-4o-mini"}"#, &[]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "input");
    // previous_response_id cannot be honoured by the mock: refused, naming the field.
    let r = post_json(
        &g.addr,
        "/v1/responses",
        r#"{"model":"gpt-4o-mini","input":"and?","previous_response_id":"resp_1"}"#,
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(
        r.body_str().contains("previous_response_id"),
        "{}",
        r.body_str()
    );
    let records = g.wait_records(4);
    assert!(
        records.iter().any(|r| r["endpoint"] == "responses"),
        "{records:?}"
    );
});
