//! The soak's gateway config and its traffic mix: each lane one kind of request at its own
//! open-loop rate, together covering passthrough, streams, both translations, exact-cache
//! hits and provider failures (errors and streams cut mid-way).

use std::path::Path;

use crate::loadgen::chat_body;

/// The admin token the soak's gateway reads from this variable (reloads need it).
pub const ADMIN_TOKEN_ENV: &str = "SOAK_ADMIN_TOKEN";
/// The Anthropic provider's key variable (mockllm wants a key, any value).
pub const ANTHROPIC_KEY_ENV: &str = "SOAK_ANTHROPIC_KEY";

/// Ports of what the gateway talks to.
#[derive(Debug, Clone, Copy)]
pub struct Upstreams {
    /// The mockllm that answers normally (OpenAI and Anthropic dialects).
    pub mock: u16,
    /// A mockllm answering every generation with a 500.
    pub failing: u16,
    /// A mockllm cutting every stream half-way with a TCP reset.
    pub cutting: u16,
}

/// The gateway's config: one shard, admin with a token, a request log rotated at 64 MiB
/// (one old part kept, so the disk use is bounded), and the aliases the lanes call.
pub fn gateway_toml(listen: u16, admin: u16, log: &Path, up: Upstreams) -> String {
    let log = log
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"[server]
listen = "127.0.0.1:{listen}"
shards = 1

[admin]
listen = "127.0.0.1:{admin}"
token_env = "{ADMIN_TOKEN_ENV}"

[log]
path = "{log}"
max_bytes = 67108864
keep = 1

[cache]
exact_max_bytes = 16777216

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"

[providers.anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}/v1"
api_key_env = "{ANTHROPIC_KEY_ENV}"

[providers.failing]
kind = "openai"
base_url = "http://127.0.0.1:{failing}/v1"

[providers.cutting]
kind = "openai"
base_url = "http://127.0.0.1:{cutting}/v1"

[models."gpt-4o-mini"]
targets = [ {{ provider = "mock", model = "gpt-4o-mini" }} ]

[models."claude-soak"]
targets = [ {{ provider = "anthropic", model = "claude-soak" }} ]

[models."cached-mini"]
targets = [ {{ provider = "mock", model = "gpt-4o-mini" }} ]

[models."cached-mini".cache]
exact = true
ttl_s = 3600

[models."failing"]
targets = [ {{ provider = "failing", model = "gpt-4o-mini" }} ]
eject = {{ consecutive_failures = 0 }}

[models."cutting"]
targets = [ {{ provider = "cutting", model = "gpt-4o-mini" }} ]
eject = {{ consecutive_failures = 0 }}
"#,
        mock = up.mock,
        failing = up.failing,
        cutting = up.cutting,
    )
}

/// One kind of request at one rate.
#[derive(Debug, Clone)]
pub struct Lane {
    /// Its name in the CSV and the summary.
    pub name: &'static str,
    /// Request path on the gateway.
    pub path: &'static str,
    /// Read the answer as an SSE stream.
    pub stream: bool,
    /// The body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Requests per second (before the soak's scale).
    pub rate: f64,
    /// Its requests are meant to fail (provider errors): failures are expected, successes
    /// are not counted against the gateway.
    pub fails: bool,
}

fn chat(model: &str, stream: bool) -> Vec<u8> {
    chat_body(model, stream, 1024)
}

/// An Anthropic Messages request for `model` (translated by the gateway to Chat
/// Completions when the model's provider speaks OpenAI).
fn messages(model: &str) -> Vec<u8> {
    serde_json::json!({
        "model": model,
        "max_tokens": 64,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "Summarize the soak test in one sentence."}],
    })
    .to_string()
    .into_bytes()
}

/// The mix: about 175 requests per second at scale 1.
pub fn lanes() -> Vec<Lane> {
    let lane = |name, path, stream, body, rate, fails| Lane {
        name,
        path,
        stream,
        body,
        headers: Vec::new(),
        rate,
        fails,
    };
    let mut anthropic = lane(
        "messages-to-openai",
        "/v1/messages",
        false,
        messages("gpt-4o-mini"),
        20.0,
        false,
    );
    anthropic
        .headers
        .push(("anthropic-version".into(), "2023-06-01".into()));
    vec![
        lane(
            "chat",
            "/v1/chat/completions",
            false,
            chat("gpt-4o-mini", false),
            50.0,
            false,
        ),
        lane(
            "chat-stream",
            "/v1/chat/completions",
            true,
            chat("gpt-4o-mini", true),
            20.0,
            false,
        ),
        lane(
            "chat-to-anthropic-stream",
            "/v1/chat/completions",
            true,
            chat("claude-soak", true),
            15.0,
            false,
        ),
        anthropic,
        lane(
            "cache-hit",
            "/v1/chat/completions",
            false,
            chat("cached-mini", false),
            50.0,
            false,
        ),
        lane(
            "provider-500",
            "/v1/chat/completions",
            false,
            chat("failing", false),
            10.0,
            true,
        ),
        lane(
            "stream-reset-mid-way",
            "/v1/chat/completions",
            true,
            chat("cutting", true),
            10.0,
            true,
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_lane_model_has_an_alias() {
        let toml = gateway_toml(
            1,
            2,
            Path::new("/tmp/soak/requests.jsonl"),
            Upstreams {
                mock: 3,
                failing: 4,
                cutting: 5,
            },
        );
        let parsed: toml_like::Doc = toml_like::parse(&toml);
        for lane in lanes() {
            let body: serde_json::Value = serde_json::from_slice(&lane.body).unwrap();
            let model = body["model"].as_str().unwrap();
            assert!(
                parsed.has_section(&format!("models.\"{model}\"")),
                "{}: no alias {model}",
                lane.name
            );
            assert_eq!(body.get("stream").is_some(), lane.stream, "{}", lane.name);
        }
        assert!(toml.contains("base_url = \"http://127.0.0.1:4/v1\""));
        assert!(toml.contains("base_url = \"http://127.0.0.1:5/v1\""));
        assert!(toml.contains(&format!("token_env = \"{ADMIN_TOKEN_ENV}\"")));
    }

    /// Section headers of a TOML text, enough to check which aliases exist.
    mod toml_like {
        pub struct Doc(Vec<String>);
        impl Doc {
            pub fn has_section(&self, name: &str) -> bool {
                self.0.iter().any(|s| s == name)
            }
        }
        pub fn parse(text: &str) -> Doc {
            Doc(text
                .lines()
                .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
                .map(str::to_string)
                .collect())
        }
    }
}
