//! What can go wrong while building a [`Detector`](super::Detector) from rule specs.

/// Why a set of rules could not become a detector. Every variant names the rule at fault so a
/// config error points at the line to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    /// The name is neither a built-in rule nor a group (`secrets`, `pii`).
    #[error("guardrails: unknown built-in rule or group {0:?}")]
    UnknownRule(String),
    /// A custom rule's name is not snake_case (`[a-z][a-z0-9_]*`, at most 64 bytes): names
    /// appear in `[REDACTED:name]` markers and records, so they stay plain.
    #[error("guardrails: rule name {0:?} is not snake_case ([a-z][a-z0-9_]*, at most 64 bytes)")]
    BadName(String),
    /// Two rules share a name (a custom rule may not reuse a built-in one's).
    #[error("guardrails: rule {0:?} is defined twice")]
    Duplicate(String),
    /// The rule's regex does not parse.
    #[error("guardrails: rule {rule:?}: invalid regex: {message}")]
    Regex {
        /// The rule at fault.
        rule: String,
        /// The parser's explanation.
        message: String,
    },
    /// The regex can match the empty string, which would flag every position.
    #[error("guardrails: rule {0:?} can match empty text")]
    EmptyMatch(String),
    /// The regex can match text of unbounded length; the stream scanner must know how much
    /// text one match can span, so every repetition needs an upper bound (`{1,64}`, not `+`).
    #[error("guardrails: rule {0:?} can match unboundedly long text: bound every repetition (e.g. {{1,64}} instead of + or *)")]
    Unbounded(String),
    /// A match may span at most [`MAX_RULE_LEN`](super::MAX_RULE_LEN) bytes.
    #[error(
        "guardrails: rule {rule:?} can match up to {len} bytes, more than the limit of {limit}"
    )]
    TooLong {
        /// The rule at fault.
        rule: String,
        /// Its longest possible match, in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// No rule was chosen: a detector that can find nothing is a configuration mistake.
    #[error("guardrails: no rules chosen")]
    NoRules,
    /// The rules compile, but the matcher or the stream automaton built from them exceeds
    /// its size limit (too many or too large custom rules).
    #[error("guardrails: the rules are too large to compile together: {0}")]
    TooComplex(String),
}
