//! `[otel]`: where traces go (an OTLP/HTTP collector), under which service name, and which
//! share of new traces is kept. Checked when the file is read, so a bad endpoint refuses the
//! config instead of failing later on the exporter thread.

use serde::Deserialize;

use super::ConfigError;

/// OpenTelemetry trace export. Without an `endpoint` nothing is traced.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// Base URL of an OTLP/HTTP collector (`http://127.0.0.1:4318`); spans are posted to
    /// `{endpoint}/v1/traces`. Unset: no tracing.
    pub endpoint: Option<String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Share of traces the gateway starts that are sampled (0.0 to 1.0); a client's
    /// `traceparent` decides for its own trace.
    pub sample_ratio: f64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "infergate".to_string(),
            sample_ratio: 1.0,
        }
    }
}

/// A plain-HTTP collector address, split for the exporter's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when the URL names none).
    pub port: u16,
    /// The `Host` header value, as the URL wrote it.
    pub authority: String,
    /// Request path: the URL's path with `/v1/traces` appended.
    pub path: String,
}

impl OtelConfig {
    /// Checks the section; returns the collector to post to (`None`: tracing is off).
    pub fn endpoint(&self) -> Result<Option<OtlpEndpoint>, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid(format!("[otel] {why}"));
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid(format!(
                "sample_ratio must be between 0.0 and 1.0 (got {})",
                self.sample_ratio
            )));
        }
        if self.service_name.trim().is_empty() {
            return Err(invalid("service_name may not be empty".into()));
        }
        let Some(url) = &self.endpoint else {
            return Ok(None);
        };
        parse_http_url(url)
            .map(Some)
            .map_err(|why| invalid(format!("endpoint {url:?}: {why}")))
    }
}

/// Splits `http://host[:port][/path]` (no user info, query or fragment).
fn parse_http_url(url: &str) -> Result<OtlpEndpoint, &'static str> {
    let rest = url.strip_prefix("http://").ok_or(
        "only http:// collector URLs are supported (run a collector or agent on the node for TLS)",
    )?;
    if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace()) {
        return Err("a collector URL has no user info, query, fragment or spaces");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = split_host_port(authority)?;
    let base = path.trim_end_matches('/');
    Ok(OtlpEndpoint {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path: format!("{base}/v1/traces"),
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or("bad port")?,
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(endpoint: &str) -> OtelConfig {
        OtelConfig {
            endpoint: Some(endpoint.into()),
            ..OtelConfig::default()
        }
    }

    #[test]
    fn endpoints_are_split_and_get_the_signal_path() {
        let e = with("http://127.0.0.1:4318").endpoint().unwrap().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 4318));
        assert_eq!(e.path, "/v1/traces");
        let e = with("http://collector/otlp/").endpoint().unwrap().unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("collector", 80, "/otlp/v1/traces")
        );
        assert_eq!(e.authority, "collector");
        let e = with("http://[::1]:4318").endpoint().unwrap().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 4318));
        assert_eq!(OtelConfig::default().endpoint().unwrap(), None);
    }

    #[test]
    fn bad_settings_are_config_errors() {
        for bad in [
            "https://collector:4318",
            "collector:4318",
            "http://",
            "http://:4318",
            "http://h:0",
            "http://h:99999",
            "http://h:43x8",
            "http://u:p@h:4318",
            "http://h:4318/v1?x=1",
            "http://[::1",
        ] {
            let err = with(bad).endpoint().unwrap_err().to_string();
            assert!(err.contains("[otel] endpoint"), "{bad}: {err}");
        }
        let ratio = OtelConfig {
            sample_ratio: 1.5,
            ..OtelConfig::default()
        };
        assert!(ratio.endpoint().is_err());
        let nan = OtelConfig {
            sample_ratio: f64::NAN,
            ..OtelConfig::default()
        };
        assert!(nan.endpoint().is_err());
        let unnamed = OtelConfig {
            service_name: " ".into(),
            ..OtelConfig::default()
        };
        assert!(unnamed.endpoint().is_err());
    }
}
