//! Configuration files the scenario writes for the proxies it measures.

use std::path::Path;

/// nginx configuration template shipped with the crate (`loadtest/nginx.conf.template`).
pub const NGINX_TEMPLATE: &str = include_str!("../../nginx.conf.template");

/// An infergate config with one shard, routing `gpt-4o-mini` to the mock at `mock_port`.
pub fn infergate_toml(
    listen_port: u16,
    admin_port: u16,
    log_path: &Path,
    mock_port: u16,
) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{listen_port}"
shards = 1

[admin]
listen = "127.0.0.1:{admin_port}"

[log]
path = "{log}"

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}/v1"

[models."gpt-4o-mini"]
targets = [ {{ provider = "mock", model = "gpt-4o-mini" }} ]
"#,
        log = log_path
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

/// The gateway key the governed path sends, and its SHA-256 for the config.
pub const BENCH_KEY: &str = "ig-bench-key";
const BENCH_KEY_SHA256: &str = "3c84d4d1dc5b03d753fdb9ff5b10faab69640414f49dae782344ba7f0a260a3d";

/// `base` with governance on: a key of a tenant, each with request and token limits and a
/// daily budget, all far above what the load reaches, so every request is admitted, reserved
/// and settled without being refused (`gpt-4o-mini` is in the built-in price table).
pub fn governed_toml(base: &str) -> String {
    format!(
        r#"{base}
[tenants.bench]
limits = {{ rpm = 100000000, tpm = 1000000000 }}
budget = {{ usd = 1000000.0, per = "day" }}

[auth]
keys = [ {{ name = "bench", sha256 = "{BENCH_KEY_SHA256}", tenant = "bench", limits = {{ rpm = 100000000, tpm = 1000000000 }}, budget = {{ usd = 1000000.0, per = "day" }} }} ]
"#
    )
}

/// `base` with guardrails on: every built-in rule (secrets and personal data) redacting
/// both what clients send and what the mock answers, on the measured alias.
pub fn guarded_toml(base: &str) -> String {
    let route = "targets = [ { provider = \"mock\", model = \"gpt-4o-mini\" } ]\n";
    let with = format!("{route}guardrails = [\"all\"]\n");
    format!(
        "{}\n[guardrails.all]\nrules = [\"secrets\", \"pii\"]\naction = \"redact\"\n",
        base.replacen(route, &with, 1)
    )
}

/// Which target an alias asks first in a failover measurement, before the mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstTarget {
    /// A provider on a port nothing listens on: the connect is refused at once.
    Refused,
    /// A provider that answers every call 503 at once (a mockllm with `--fault status:503`).
    Unavailable,
}

/// `base` with the measured alias failing over: provider `down` at `down_port` first, then
/// the mock. With `eject` false the alias never ejects `down` (`consecutive_failures = 0`),
/// so every request pays the failed attempt; with `eject` true the defaults apply (ejected
/// after 5 failures in a row for 30 s, then probed by one request).
pub fn failover_toml(base: &str, down_port: u16, eject: bool) -> String {
    let route = "targets = [ { provider = \"mock\", model = \"gpt-4o-mini\" } ]\n";
    let mut with = String::from(
        "targets = [ { provider = \"down\", model = \"gpt-4o-mini\" }, { provider = \"mock\", model = \"gpt-4o-mini\" } ]\n",
    );
    if !eject {
        with.push_str("eject = { consecutive_failures = 0 }\n");
    }
    format!(
        "{}\n[providers.down]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{down_port}/v1\"\n",
        base.replacen(route, &with, 1)
    )
}

/// The nginx config: listen on `listen_port`, proxy to the mock at `mock_port`, files in `dir`.
pub fn nginx_conf(dir: &Path, listen_port: u16, mock_port: u16) -> String {
    NGINX_TEMPLATE
        .replace("{{DIR}}", &dir.display().to_string())
        .replace("{{LISTEN_PORT}}", &listen_port.to_string())
        .replace("{{UPSTREAM_PORT}}", &mock_port.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infergate_config_names_every_port() {
        let toml = infergate_toml(1001, 1002, Path::new("/tmp/x/requests.jsonl"), 1003);
        assert!(toml.contains("listen = \"127.0.0.1:1001\""));
        assert!(toml.contains("listen = \"127.0.0.1:1002\""));
        assert!(toml.contains("base_url = \"http://127.0.0.1:1003/v1\""));
        assert!(toml.contains("path = \"/tmp/x/requests.jsonl\""));
        assert!(toml.contains("[models.\"gpt-4o-mini\"]"));
    }

    #[test]
    fn the_governed_config_holds_the_bench_key() {
        let toml = governed_toml(&infergate_toml(1, 2, Path::new("/tmp/l"), 3));
        assert!(toml.contains("[tenants.bench]") && toml.contains(BENCH_KEY_SHA256));
        assert!(toml.contains("tenant = \"bench\""));
    }

    #[test]
    fn the_guarded_config_puts_the_policy_on_the_alias() {
        let toml = guarded_toml(&infergate_toml(1, 2, Path::new("/tmp/l"), 3));
        assert!(toml.contains("guardrails = [\"all\"]") && toml.contains("[guardrails.all]"));
    }

    #[test]
    fn the_failover_config_puts_the_down_provider_first() {
        let base = infergate_toml(1, 2, Path::new("/tmp/l"), 3);
        let off = failover_toml(&base, 4, false);
        assert!(
            off.contains("{ provider = \"down\", model = \"gpt-4o-mini\" }, { provider = \"mock\"")
        );
        assert!(off.contains("eject = { consecutive_failures = 0 }"));
        assert!(off.contains("base_url = \"http://127.0.0.1:4/v1\""));
        let on = failover_toml(&base, 4, true);
        assert!(on.contains("provider = \"down\"") && !on.contains("eject ="));
        for toml in [off, on] {
            assert_eq!(toml.matches("[providers.down]").count(), 1);
            assert_eq!(toml.matches("targets = ").count(), 1);
        }
    }

    #[test]
    fn nginx_template_is_fully_filled() {
        let conf = nginx_conf(Path::new("/tmp/n"), 2001, 2002);
        assert!(!conf.contains("{{"));
        assert!(conf.contains("listen 127.0.0.1:2001;"));
        assert!(conf.contains("server 127.0.0.1:2002;"));
        assert!(conf.contains("proxy_buffering off;"));
    }
}
