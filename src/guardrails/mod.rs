//! Guardrails: find secrets (API keys, tokens, private keys, JWTs) and personal data (card
//! numbers, IBANs, emails, phone numbers, US SSNs) in text, in whole bodies or in streams,
//! and redact them.
//!
//! - [`rules`]: the built-in rules, their groups and maximum match lengths.
//! - [`RuleSpec`]: which rules a detector uses (built-in names, groups, custom regexes).
//! - [`Detector`]: all chosen rules in one matcher; `find` and `redact`.
//! - [`StreamScanner`]: the same findings over a stream of deltas, holding back only the
//!   tail where a match could still start.
//!
//! - [`GuardrailPolicy`]: a `[guardrails.NAME]` policy (rules, action, sides) compiled
//!   once per route table; [`scan_body`] applies policies to a whole JSON body in any
//!   dialect (the request path's guard phase and whole answers).
//! - [`schema`]: JSON-schema enforcement of structured output (whole and streamed answers).

mod body;
mod compile;
mod detector;
mod error;
mod live;
mod policy;
pub mod rules;
#[cfg(test)]
mod samples;
pub mod schema;
mod sse;
mod stream;
mod validate;

pub use body::{scan_body, BodyScan, Hit};
pub use compile::{CustomRule, RuleInfo, RuleSpec};
pub use detector::{Detector, Finding, RuleId};
pub use error::GuardrailError;
pub use policy::{BadPolicy, GuardrailPolicies, GuardrailPolicy};
pub use rules::{BuiltinRule, RuleGroup};
pub use sse::GuardedStream;
pub use stream::{StreamFinding, StreamScanner};

/// The longest match, in bytes, a custom rule may allow: it bounds what a stream holds back.
pub const MAX_RULE_LEN: usize = 8192;
