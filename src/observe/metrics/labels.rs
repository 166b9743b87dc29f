//! Bounded label values. A label value comes from the config (an alias, a provider, an
//! upstream model or a tenant the current route table knows) or from a fixed list in this
//! file; anything else collapses into [`OTHER`], and a missing value is [`NONE`]. So the
//! number of series is bounded by the config, never by what clients send.
//!
//! Each shard keeps its own [`LabelIndex`]: names are interned to small ids once (the ids
//! differ between shards; the scraper merges by name), and the sets of allowed names are
//! rebuilt when the route table's version changes.

use std::collections::HashMap;

use crate::route::RouteTable;

/// A label value that the config does not know (a model nobody configured, say).
pub const OTHER: &str = "other";
/// A label value that is absent (a request refused before it was routed has no provider).
pub const NONE: &str = "none";

/// An interned label value, valid within one [`LabelIndex`].
pub type LabelId = u32;

/// The id of [`OTHER`] in every index.
pub const OTHER_ID: LabelId = 0;
/// The id of [`NONE`] in every index.
pub const NONE_ID: LabelId = 1;

/// Interned names and, per dimension, the names the current route table allows.
#[derive(Debug)]
pub struct LabelIndex {
    version: Option<u64>,
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, LabelId>,
    aliases: HashMap<Box<str>, LabelId>,
    providers: HashMap<Box<str>, LabelId>,
    models: HashMap<Box<str>, LabelId>,
    tenants: HashMap<Box<str>, LabelId>,
}

impl Default for LabelIndex {
    fn default() -> Self {
        let mut index = Self {
            version: None,
            names: Vec::new(),
            ids: HashMap::new(),
            aliases: HashMap::new(),
            providers: HashMap::new(),
            models: HashMap::new(),
            tenants: HashMap::new(),
        };
        index.intern(OTHER);
        index.intern(NONE);
        index
    }
}

/// Which config set a label value is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Model aliases (`[models]`).
    Alias,
    /// Providers (`[providers]`).
    Provider,
    /// Upstream model names (every target's `model`).
    UpstreamModel,
    /// Tenants (`[tenants]` and run-time tenants).
    Tenant,
}

impl LabelIndex {
    /// Rebuilds the allowed sets when `table` is not the one they were built from. Names
    /// interned for an older table keep their ids: their series stay (counters never go
    /// back), and the interner grows only by names an operator configured.
    pub fn refresh(&mut self, table: &RouteTable) {
        if self.version == Some(table.version) {
            return;
        }
        self.version = Some(table.version);
        let aliases: Vec<&str> = table.models.keys().map(|a| &**a).collect();
        let providers: Vec<&str> = table.providers.keys().map(String::as_str).collect();
        let models: Vec<&str> = table
            .models
            .values()
            .flat_map(|r| r.targets.iter().map(|t| &*t.model))
            .collect();
        let tenants: Vec<&str> = table
            .governance
            .rules
            .tenants
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        self.aliases = self.allowed(&aliases);
        self.providers = self.allowed(&providers);
        self.models = self.allowed(&models);
        self.tenants = self.allowed(&tenants);
    }

    fn allowed(&mut self, names: &[&str]) -> HashMap<Box<str>, LabelId> {
        names
            .iter()
            .map(|name| (Box::from(*name), self.intern(name)))
            .collect()
    }

    fn intern(&mut self, name: &str) -> LabelId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = LabelId::try_from(self.names.len()).unwrap_or(OTHER_ID);
        self.names.push(Box::from(name));
        self.ids.insert(Box::from(name), id);
        id
    }

    /// The id of `value` in `dimension`: [`NONE_ID`] when absent, [`OTHER_ID`] when the
    /// current table does not know it.
    pub fn id(&self, dimension: Dimension, value: Option<&str>) -> LabelId {
        let Some(value) = value else {
            return NONE_ID;
        };
        let set = match dimension {
            Dimension::Alias => &self.aliases,
            Dimension::Provider => &self.providers,
            Dimension::UpstreamModel => &self.models,
            Dimension::Tenant => &self.tenants,
        };
        set.get(value).copied().unwrap_or(OTHER_ID)
    }

    /// The name behind an id ([`OTHER`] for an id this index never gave).
    pub fn name(&self, id: LabelId) -> &str {
        self.names.get(id as usize).map_or(OTHER, |n| n)
    }
}

/// The gateway's own error codes (`RequestRecord::error`) that are label values as they are.
/// Kept sorted: looked up by binary search.
const ERROR_CODES: &[&str] = &[
    "all_targets_failed",
    "client_closed",
    "gateway_busy",
    "guardrail_blocked",
    "guardrail_failed",
    "internal_error",
    "internal_panic",
    "invalid_api_key",
    "invalid_json",
    "invalid_json_schema",
    "invalid_metadata",
    "invalid_request",
    "invalid_run_id",
    "json_schema_violation",
    "max_tokens_not_set",
    "method_not_allowed",
    "missing_api_key",
    "model_not_allowed",
    "model_not_found",
    "model_not_priced",
    "no_available_target",
    "no_capable_target",
    "no_target_in_region",
    "origin_not_allowed",
    "rate_limit_exceeded",
    "request_header_fields_too_large",
    "request_timeout",
    "request_too_large",
    "run_concurrency_limit",
    "run_killed",
    "run_loop_detected",
    "run_step_limit",
    "run_stopped",
    "run_time_limit",
    "unknown_url",
    "unsupported_content_type",
    "unsupported_parameter",
    "untranslatable_response",
    "upstream_concurrency_exhausted",
    "upstream_failed",
    "upstream_malformed_response",
    "upstream_unexpected_stream",
];

/// The error label of a finished request, or `None` when it did not fail. A gateway code is
/// kept when it is a known one; a stream that broke mid-way (`upstream_stream_*`) is
/// `upstream_stream_failed`; a provider's error status passed to the client (no code of the
/// gateway's) is `upstream_4xx` or `upstream_5xx`; anything else is [`OTHER`].
pub fn error_label(error: Option<&str>, status: u16) -> Option<&'static str> {
    match error {
        Some(code) => Some(match ERROR_CODES.binary_search(&code) {
            Ok(i) => ERROR_CODES.get(i).copied().unwrap_or(OTHER),
            Err(_) if code.starts_with("upstream_stream_") => "upstream_stream_failed",
            Err(_) => OTHER,
        }),
        None if (400..500).contains(&status) => Some("upstream_4xx"),
        None if status >= 500 => Some("upstream_5xx"),
        None => None,
    }
}

/// The transport failures an attempt records (`UpstreamError::kind` and the two ways a
/// request ends an attempt), kept as they are. Sorted.
const ATTEMPT_ERRORS: &[&str] = &[
    "body_timeout",
    "body_too_large",
    "client_closed",
    "closed",
    "concurrency_limited",
    "connect",
    "connect_timeout",
    "first_byte_timeout",
    "malformed",
    "malformed_body",
    "no_address",
    "no_link",
    "read",
    "run_killed",
    "tls",
    "unexpected_stream",
    "write",
];

/// An attempt's result label: its transport error when it has one (a stream that broke
/// mid-way is `stream_failed`), else its status class.
pub fn attempt_result(error: Option<&str>, status: Option<u16>) -> &'static str {
    match (error, status) {
        (Some(e), _) => match ATTEMPT_ERRORS.binary_search(&e) {
            Ok(i) => ATTEMPT_ERRORS.get(i).copied().unwrap_or(OTHER),
            Err(_) if e.starts_with("upstream_stream_") => "stream_failed",
            Err(_) => OTHER,
        },
        (None, Some(s)) => status_class(s),
        (None, None) => OTHER,
    }
}

/// `2xx`, `4xx`, ... for a status; [`OTHER`] for anything outside 100–599.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => OTHER,
    }
}

/// The cache result label: one of the record's five values, else [`OTHER`].
pub fn cache_result(cache: &str) -> &'static str {
    match cache {
        "hit" => "hit",
        "semantic" => "semantic",
        "miss" => "miss",
        "skip" => "skip",
        "refresh" => "refresh",
        _ => OTHER,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn table(src: &str) -> RouteTable {
        RouteTable::compile(&Config::parse(src).unwrap()).unwrap()
    }

    const CFG: &str = r#"
[providers.p]
kind = "mock"
[models.a]
targets = [{ provider = "p", model = "up-a" }]
[tenants.acme]
"#;

    #[test]
    fn values_outside_the_config_collapse_into_other() {
        let mut index = LabelIndex::default();
        index.refresh(&table(CFG));
        let alias = index.id(Dimension::Alias, Some("a"));
        assert_eq!(index.name(alias), "a");
        assert_eq!(index.id(Dimension::Alias, Some("gpt-9")), OTHER_ID);
        assert_eq!(index.id(Dimension::Alias, None), NONE_ID);
        assert_eq!(index.name(index.id(Dimension::Provider, Some("p"))), "p");
        assert_eq!(
            index.name(index.id(Dimension::UpstreamModel, Some("up-a"))),
            "up-a"
        );
        assert_eq!(
            index.name(index.id(Dimension::Tenant, Some("acme"))),
            "acme"
        );
        // A name valid in one dimension is not valid in another.
        assert_eq!(index.id(Dimension::Provider, Some("a")), OTHER_ID);
        assert_eq!(index.name(OTHER_ID), OTHER);
        assert_eq!(index.name(NONE_ID), NONE);
    }

    #[test]
    fn a_new_table_changes_what_is_allowed_and_keeps_ids() {
        let mut index = LabelIndex::default();
        index.refresh(&table(CFG));
        let a = index.id(Dimension::Alias, Some("a"));
        index.refresh(&table(
            "[providers.p]\nkind = \"mock\"\n[models.b]\ntargets = [{ provider = \"p\", model = \"up-b\" }]\n",
        ));
        assert_eq!(index.id(Dimension::Alias, Some("a")), OTHER_ID);
        assert_ne!(index.id(Dimension::Alias, Some("b")), OTHER_ID);
        assert_eq!(index.id(Dimension::Tenant, Some("acme")), OTHER_ID);
        // "a" keeps its id, so its old series still resolve to its name.
        assert_eq!(index.name(a), "a");
    }

    #[test]
    fn error_codes_are_bounded() {
        assert_eq!(
            error_label(Some("model_not_found"), 404),
            Some("model_not_found")
        );
        assert_eq!(
            error_label(Some("upstream_stream_stalled"), 200),
            Some("upstream_stream_failed")
        );
        assert_eq!(error_label(Some("something new"), 500), Some(OTHER));
        assert_eq!(error_label(None, 429), Some("upstream_4xx"));
        assert_eq!(error_label(None, 503), Some("upstream_5xx"));
        assert_eq!(error_label(None, 200), None);
    }

    #[test]
    fn the_code_lists_are_sorted() {
        assert!(ERROR_CODES.windows(2).all(|w| w[0] < w[1]));
        assert!(ATTEMPT_ERRORS.windows(2).all(|w| w[0] < w[1]));
    }

    /// Every code the gateway passes to `ApiError::new` as a literal is a known label value,
    /// so a new error is a series of its own rather than `other`.
    #[test]
    fn every_literal_api_error_code_is_known() {
        let mut missing = Vec::new();
        let mut seen = 0;
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("labels.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("ApiError::new(") {
                    let rest = &text[at + "ApiError::new(".len()..];
                    let Some(quote) = rest.find('"') else {
                        continue;
                    };
                    // `ApiError::new(KIND, "code", ...)`: one comma before the code.
                    if rest[..quote].matches(',').count() != 1 {
                        continue;
                    }
                    let code = &rest[quote + 1..];
                    let code = &code[..code.find('"').unwrap()];
                    if code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        seen += 1;
                        if ERROR_CODES.binary_search(&code).is_err() {
                            missing.push(format!("{code} ({})", path.display()));
                        }
                    }
                }
            }
        }
        assert!(seen > 10, "the scan found only {seen} codes");
        assert!(missing.is_empty(), "unknown error codes: {missing:?}");
    }

    #[test]
    fn attempts_and_statuses_have_bounded_labels() {
        assert_eq!(attempt_result(Some("connect"), None), "connect");
        assert_eq!(attempt_result(None, Some(503)), "5xx");
        assert_eq!(
            attempt_result(Some("upstream_stream_stalled"), Some(200)),
            "stream_failed"
        );
        assert_eq!(attempt_result(Some("weird"), None), OTHER);
        assert_eq!(status_class(0), OTHER);
        assert_eq!(status_class(499), "4xx");
        assert_eq!(cache_result("semantic"), "semantic");
        assert_eq!(cache_result("x"), OTHER);
    }
}
