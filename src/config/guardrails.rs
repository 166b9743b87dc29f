//! The guardrails part of the config file: named policies (which rules, what to do, on
//! which side) that model aliases and tenants list.

use serde::Deserialize;

/// One named guardrail policy: `[guardrails.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailConfig {
    /// Built-in rule names (`openai_key`, `email`, ...) or groups (`secrets`, `pii`).
    #[serde(default)]
    pub rules: Vec<String>,
    /// `block` (refuse with a 400 naming the rule), `redact` (replace each match with
    /// `[REDACTED:rule]`) or `flag` (forward, and record which rules fired).
    pub action: GuardrailAction,
    /// `request` (what clients send) and/or `response` (what providers return).
    #[serde(default = "both_sides")]
    pub on: Vec<GuardrailSide>,
    /// Extra rules: `{ name = "employee_id", regex = "EMP-[0-9]{6}" }`.
    #[serde(default)]
    pub custom: Vec<CustomRuleConfig>,
}

fn both_sides() -> Vec<GuardrailSide> {
    vec![GuardrailSide::Request, GuardrailSide::Response]
}

/// What a policy does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailAction {
    /// Refuse the request (or the answer).
    Block,
    /// Replace the match before the text leaves the gateway.
    Redact,
    /// Let it through and record it.
    Flag,
}

/// Which texts a policy scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailSide {
    /// Every text a client sends.
    Request,
    /// Every text a provider returns.
    Response,
}

/// A custom rule of a policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRuleConfig {
    /// The rule's name, as records and errors show it.
    pub name: String,
    /// The pattern (Rust `regex` syntax).
    pub regex: String,
}
