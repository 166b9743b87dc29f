//! Guardrails with the real binary, mockllm and curl: each built-in secret kind in a
//! request is blocked (and never reaches the provider), personal data is redacted with the
//! rest of the body forwarded as it was, tool-call arguments are scanned, look-alikes pass
//! untouched, and whole answers are redacted or blocked on the way back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

const SECRET_RULES: [&str; 10] = [
    "openai_key",
    "anthropic_key",
    "aws_access_key",
    "google_api_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "huggingface_token",
    "private_key",
    "jwt",
];

fn config(mock: &Mock) -> String {
    format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{}"

[guardrails.no-secrets]
rules = ["secrets"]
action = "block"
on = ["request"]

[guardrails.mask-pii]
rules = ["email", "phone", "credit_card"]
action = "redact"
on = ["request"]
custom = [ {{ name = "employee_id", regex = "EMP-[0-9]{{6}}" }} ]

[guardrails.answers]
rules = ["email"]
action = "redact"
on = ["response"]

[guardrails.no-phone-out]
rules = ["phone"]
action = "block"
on = ["response"]

[guardrails.watch]
rules = ["iban"]
action = "flag"

[models.guarded]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
guardrails = ["no-secrets", "mask-pii", "watch"]

[models.answers]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
guardrails = ["answers", "no-phone-out"]
"#,
        mock.base_url()
    )
}

fn chat(model: &str, text: &str) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "x_keep": {"exactly": "as sent"},
    })
    .to_string()
}

/// One corpus text per secrets rule that fires that rule alone.
fn samples() -> Vec<(String, String)> {
    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/guardrails_corpus.jsonl"
    ))
    .unwrap();
    SECRET_RULES
        .iter()
        .map(|rule| {
            let text = corpus
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|v| v["rules"] == serde_json::json!([rule]))
                .unwrap_or_else(|| panic!("no corpus sample for {rule}"))["text"]
                .as_str()
                .unwrap()
                .to_string();
            (rule.to_string(), text)
        })
        .collect()
}

#[test]
fn requests_are_blocked_redacted_flagged_and_lookalikes_pass() {
    let m = Mock::start(&["--tokens", "40"]);
    let g = Gateway::start(&config(&m), Driver::Uring);
    let path = "/v1/chat/completions";

    // A clean request first: the mock's last request is this one until another gets through.
    let clean = chat("guarded", "Summarise the meeting notes, please.");
    assert_eq!(post_json(&g.addr, path, &clean, &[]).status, 200);
    for (rule, text) in samples() {
        let r = post_json(&g.addr, path, &chat("guarded", &text), &[]);
        assert_eq!(r.status, 400, "{rule}: {}", r.body_str());
        let err = r.json();
        assert_eq!(err["error"]["code"], "guardrail_blocked", "{rule}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("rule `{rule}`")),
            "{rule}: {message}"
        );
        // Never echoed, and it never left: the provider saw only the clean request.
        for token in text.split_whitespace().filter(|t| t.len() > 12) {
            assert!(
                !r.body_str().contains(token),
                "{rule}: the error echoes {token}"
            );
        }
        let last = m.last_request().to_string();
        assert!(
            last.contains("Summarise the meeting notes"),
            "{rule}: {last}"
        );
    }

    // Tool-call arguments are text too.
    let aws = samples()
        .into_iter()
        .find(|(r, _)| r == "aws_access_key")
        .unwrap()
        .1;
    let tool = serde_json::json!({
        "model": "guarded",
        "messages": [
            {"role": "user", "content": "deploy"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
              "function": {"name": "deploy", "arguments": serde_json::json!({"env": aws}).to_string()}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}
        ]
    });
    let r = post_json(&g.addr, path, &tool.to_string(), &[]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(r.body_str().contains("`arguments`"), "{}", r.body_str());

    // Redaction: the matches are replaced, the rest of the body goes on as it was sent.
    let text = "Mail jane.doe@example.com or call +1 415 555 0134 about EMP-123456; card 4111 1111 1111 1111.";
    let body = chat("guarded", text);
    let r = post_json(&g.addr, path, &body, &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let sent = m.last_request()["body"].clone();
    let content = sent["messages"][0]["content"].as_str().unwrap();
    assert_eq!(
        content,
        "Mail [REDACTED:email] or call [REDACTED:phone] about [REDACTED:employee_id]; card [REDACTED:credit_card]."
    );
    assert_eq!(sent["x_keep"]["exactly"], "as sent");

    // Look-alikes pass untouched; a flag lets the request through and records it.
    let lookalikes = "id 3f2b8c1e-9d4a-4e7b-8f6a-2c1d0e9b7a65, commit 81d268258d6a6ecc94a855e2232bc29e77350a61, ask-me-anything task-list, order 4111111111111112, IBAN GB82 WEST 1234 5698 7654 32";
    let r = post_json(&g.addr, path, &chat("guarded", lookalikes), &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        m.last_request()["body"]["messages"][0]["content"],
        lookalikes
    );

    let records = g.wait_records(14);
    let redacted = records
        .iter()
        .find(|r| {
            r["guardrails"]
                .as_array()
                .is_some_and(|g| g.iter().any(|h| h["rule"] == "employee_id"))
        })
        .unwrap();
    let rules: Vec<&str> = redacted["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"email") && rules.contains(&"phone") && rules.contains(&"credit_card"),
        "{rules:?}"
    );
    assert!(
        !redacted.to_string().contains("jane.doe"),
        "a record holds the matched text"
    );
    let flagged = records
        .iter()
        .find(|r| {
            r["guardrails"]
                .as_array()
                .is_some_and(|g| g.iter().any(|h| h["action"] == "flag"))
        })
        .unwrap();
    assert_eq!(flagged["guardrails"][0]["rule"], "iban");
    assert_eq!(flagged["status"], 200);
}

#[test]
fn answers_are_redacted_or_blocked_before_the_client_sees_them() {
    // mockllm echoes the prompt's words: what the client sends comes back in the answer.
    let m = Mock::start(&["--tokens", "12"]);
    let g = Gateway::start(&config(&m), Driver::Uring);
    let out = curl(&[
        &format!("{}/v1/chat/completions", g.url()),
        "-H",
        "content-type: application/json",
        "-d",
        &chat("answers", "write to ops@example.org today"),
    ]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("[REDACTED:email]") && !text.contains("ops@example.org"),
        "{text}"
    );
    // The request itself went out as sent (this policy scans answers only).
    assert!(m.last_request().to_string().contains("ops@example.org"));

    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("answers", "call +44 20 7946 0958 now"),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(r
        .body_str()
        .contains("The model's answer was blocked by guardrail `no-phone-out`"));
    assert!(!r.body_str().contains("7946"));

    // Streamed answers, in each client dialect (Messages is translated from the provider's
    // Chat stream; Responses goes to the provider's own Responses API): redacted as they
    // stream, and the record says so.
    let prompt = "write to ops@example.org today";
    let streams = [
        (
            "/v1/chat/completions",
            serde_json::json!({"model": "answers", "stream": true, "messages": [{"role": "user", "content": prompt}]}),
        ),
        (
            "/v1/messages",
            serde_json::json!({"model": "answers", "stream": true, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}),
        ),
        (
            "/v1/responses",
            serde_json::json!({"model": "answers", "stream": true, "input": prompt}),
        ),
    ];
    for (path, body) in &streams {
        let r = post_json(&g.addr, path, &body.to_string(), &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body_str());
        let text = r.body_str();
        assert!(text.contains("[REDACTED:email]"), "{path}: {text}");
        assert!(!text.contains("ops@example.org"), "{path}: {text}");
        assert!(
            !text.contains("guardrail_blocked") && !text.contains("stream_interrupted"),
            "{path}: {text}"
        );
    }
    // A phone number in a streamed answer ends the stream with an error event.
    let phone = serde_json::json!({"model": "answers", "stream": true, "messages": [{"role": "user", "content": "call +44 20 7946 0958 now"}]});
    let r = post_json(&g.addr, "/v1/chat/completions", &phone.to_string(), &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().contains("\"code\":\"guardrail_blocked\""),
        "{}",
        r.body_str()
    );
    assert!(!r.body_str().contains("7946"));
    let records = g.wait_records(6);
    let streamed = records
        .iter()
        .filter(|r| r["stream"] == true && r["guardrails"][0]["side"] == "response")
        .count();
    assert_eq!(streamed, 4, "{records:?}");
}
