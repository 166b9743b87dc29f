//! The official `openai` (Chat Completions and Responses) and `anthropic` Python SDKs, pointed
//! at the real binary, run a chat, a stream and a full tool-call round trip against each
//! provider kind's mock (mockllm speaks OpenAI, Azure OpenAI, Anthropic, Gemini and Bedrock).
//! Also: every OpenAI-compatible preset is reached on its path with its credential.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

const KEY: &str = "sk-sdk-matrix-upstream";

/// The provider block for `kind`, pointed at the mock.
fn provider_block(kind: &str, mock: &str) -> String {
    let url = match kind {
        "azure-openai" => format!("http://{mock}/openai"),
        "gemini" => format!("http://{mock}/v1beta"),
        "bedrock" => format!("http://{mock}"),
        _ => format!("http://{mock}/v1"),
    };
    let auth = match kind {
        "bedrock" => "region = \"us-west-2\"".to_string(),
        _ => "api_key_env = \"SDK_MATRIX_KEY\"".to_string(),
    };
    format!("[providers.up]\nkind = \"{kind}\"\nbase_url = \"{url}\"\n{auth}\n")
}

fn config(kind: &str, mock: &str) -> String {
    let model = match kind {
        "bedrock" => "anthropic.claude-mock-v1:0",
        _ => "upstream-model",
    };
    format!(
        "[auth]\nkeys = [{{ name = \"t\", sha256 = \"{}\" }}]\n\n{}\n[models.\"gpt-4o-mini\"]\ntargets = [{{ provider = \"up\", model = \"{model}\" }}]\n\n[models.\"claude\"]\ntargets = [{{ provider = \"up\", model = \"{model}\" }}]\n",
        infergate::policy::sha256_hex("gw"),
        provider_block(kind, mock)
    )
}

fn run_script(script: &str, g: &Gateway, env: &[(&str, &str)]) -> String {
    let env: Vec<(&str, &str)> = std::iter::once(("INFERGATE_KEY", "gw"))
        .chain(env.iter().copied())
        .collect();
    let text = run_python_check(g, script, &env);
    assert!(!text.contains("FAIL "), "{script} failed:\n{text}");
    text
}

fn start(kind: &str) -> (Mock, Gateway) {
    // The Bedrock mock recomputes each request's SigV4 signature with the same secret.
    let m = Mock::start_with_env(
        &["--tokens", "8"],
        &[
            ("MOCKLLM_AWS_ACCESS_KEY_ID", "AKIDSDKMATRIX"),
            ("MOCKLLM_AWS_SECRET_ACCESS_KEY", "sdk-matrix-secret"),
        ],
    );
    let g = Gateway::start_with_env(
        &config(kind, &m.addr),
        Driver::Uring,
        &[
            ("SDK_MATRIX_KEY", KEY),
            ("AWS_ACCESS_KEY_ID", "AKIDSDKMATRIX"),
            ("AWS_SECRET_ACCESS_KEY", "sdk-matrix-secret"),
        ],
    );
    (m, g)
}

/// Runs the three SDK scripts against one provider kind and checks the credential it got.
fn sdk_round_trips(kind: &str) {
    let (m, g) = start(kind);
    // The field the provider's format cannot carry, if any.
    let refused = match kind {
        "openai" | "azure-openai" => "-",
        "anthropic" => "seed",
        _ => "logit_bias",
    };
    run_script(
        "openai_tools_check.py",
        &g,
        &[("INFERGATE_REFUSED", refused)],
    );
    run_script("anthropic_sdk_check.py", &g, &[]);
    let native = if kind == "openai" { "1" } else { "0" };
    run_script(
        "responses_sdk_check.py",
        &g,
        &[("INFERGATE_NATIVE_RESPONSES", native)],
    );
    let last = m.last_request();
    let headers = &last["headers"];
    let path = last["path"].as_str().unwrap();
    match kind {
        "openai" => assert_eq!(headers["authorization"], format!("Bearer {KEY}")),
        "azure-openai" => {
            assert_eq!(headers["api-key"], KEY);
            assert!(
                path.starts_with("/openai/deployments/upstream-model/"),
                "{path}"
            );
            assert!(last["query"].as_str().unwrap().starts_with("api-version="));
        }
        "anthropic" => assert_eq!(headers["x-api-key"], KEY),
        "gemini" => {
            assert_eq!(headers["x-goog-api-key"], KEY);
            assert!(path.starts_with("/v1beta/models/upstream-model:"), "{path}");
        }
        "bedrock" => {
            let auth = headers["authorization"].as_str().unwrap();
            assert!(
                auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSDKMATRIX/")
                    && auth.contains("/us-west-2/bedrock/aws4_request"),
                "{auth}"
            );
            assert!(
                path.starts_with("/model/anthropic.claude-mock-v1%3A0/"),
                "{path}"
            );
        }
        _ => unreachable!(),
    }
    // No provider credential ever reaches the client or the log.
    let log = std::fs::read_to_string(g.dir.path().join("requests.jsonl")).unwrap_or_default();
    assert!(!log.contains(KEY) && !g.stderr().contains(KEY));
    assert!(!log.contains("sdk-matrix-secret") && !g.stderr().contains("sdk-matrix-secret"));
}

#[test]
fn openai_provider() {
    sdk_round_trips("openai");
}

#[test]
fn azure_openai_provider() {
    sdk_round_trips("azure-openai");
}

#[test]
fn anthropic_provider() {
    sdk_round_trips("anthropic");
}

#[test]
fn gemini_provider() {
    sdk_round_trips("gemini");
}

#[test]
fn bedrock_provider() {
    sdk_round_trips("bedrock");
}

/// Every OpenAI-compatible preset, named by kind, gets Chat Completions on its base URL's
/// `/chat/completions` with `authorization: Bearer KEY`, and the SDKs work through each.
#[test]
fn openai_compatible_presets() {
    let m = Mock::start(&["--tokens", "4"]);
    let presets = [
        "mistral",
        "groq",
        "together",
        "fireworks",
        "deepseek",
        "xai",
        "openrouter",
        "perplexity",
        "cerebras",
        "cloudflare-workers-ai",
        "ollama",
        "vllm",
        "openai-compatible",
    ];
    let mut cfg = format!(
        "[auth]\nkeys = [{{ name = \"t\", sha256 = \"{}\" }}]\n\n",
        infergate::policy::sha256_hex("gw")
    );
    for p in presets {
        cfg.push_str(&format!(
            "[providers.{p}]\nkind = \"{p}\"\nbase_url = \"http://{}/v1\"\napi_key_env = \"SDK_MATRIX_KEY\"\n\n[models.\"via-{p}\"]\ntargets = [{{ provider = \"{p}\", model = \"{p}-model\" }}]\n\n",
            m.addr
        ));
    }
    let g = Gateway::start_with_env(&cfg, Driver::Uring, &[("SDK_MATRIX_KEY", KEY)]);
    for p in presets {
        let body =
            format!(r#"{{"model":"via-{p}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &body,
            &[("authorization", "Bearer gw")],
        );
        assert_eq!(r.status, 200, "{p}: {}", r.body_str());
        assert_eq!(r.header("x-infergate-provider").as_deref(), Some(p));
        let last = m.last_request();
        assert_eq!(last["path"], "/v1/chat/completions", "{p}");
        assert_eq!(
            last["headers"]["authorization"],
            format!("Bearer {KEY}"),
            "{p}"
        );
        assert_eq!(last["body"]["model"], format!("{p}-model"), "{p}");
    }
    // And the three SDKs round-trip through each preset (Chat passes through; Messages and
    // Responses clients are translated to Chat).
    let models: Vec<String> = presets.iter().map(|p| format!("via-{p}")).collect();
    let text = run_script(
        "sdk_presets_check.py",
        &g,
        &[("INFERGATE_MODELS", &models.join(","))],
    );
    assert_eq!(
        text.matches(" passed, 0 failed").count(),
        3 * presets.len(),
        "{text}"
    );
}

/// The Bedrock mock really checks signatures: a gateway holding the wrong secret is refused
/// with AWS's 403, mapped to OpenAI's 401 authentication error for the client.
#[test]
fn bedrock_signature_is_verified() {
    let m = Mock::start_with_env(
        &["--tokens", "4"],
        &[
            ("MOCKLLM_AWS_ACCESS_KEY_ID", "AKIDSDKMATRIX"),
            ("MOCKLLM_AWS_SECRET_ACCESS_KEY", "sdk-matrix-secret"),
        ],
    );
    let g = Gateway::start_with_env(
        &config("bedrock", &m.addr),
        Driver::Uring,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDSDKMATRIX"),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ],
    );
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        body,
        &[("authorization", "Bearer gw")],
    );
    // AWS answers 403 InvalidSignatureException; OpenAI clients get their authentication error.
    assert_eq!(r.status, 401, "{}", r.body_str());
    let v = r.json();
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{v}"
    );
}
