//! The official `openai` Python SDK talks to the real gateway (chat, stream, embeddings,
//! models, errors). `.ci/run` installs the SDK; without it this test fails, it does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

both_drivers!(openai_python_sdk, |d| {
    let m = Mock::start(&["--tokens", "12"]);
    let cfg = format!(
        r#"
[auth]
keys = [{{ name = "sdk", sha256 = "{}" }}]

[providers.primary]
kind = "openai"
base_url = "{url}"
forward_headers = ["x-mock-*"]

[providers.backup]
kind = "openai"
base_url = "{url}"
forward_headers = ["x-mock-*"]

[models."gpt-4o-mini"]
targets = [{{ provider = "primary", model = "gpt-4o-mini" }}, {{ provider = "backup", model = "gpt-4o-mini" }}]

[models."text-embedding-3-small"]
targets = [{{ provider = "primary", model = "text-embedding-3-small" }}]
"#,
        infergate::policy::sha256_hex("sdk-key"),
        url = m.base_url()
    );
    let g = Gateway::start(&cfg, d);
    run_python_check(&g, "openai_sdk_check.py", &[("INFERGATE_KEY", "sdk-key")]);
});
