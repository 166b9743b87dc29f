//! Guardrails over a whole JSON body in any dialect: every string value a person or a model
//! wrote (messages, system prompts, content parts and blocks, tool-call arguments, tool
//! results, Responses input items) is scanned; identifiers, roles, types, signatures and
//! inline base64 data are not. A redaction is spliced into the original bytes, so the rest
//! of the body goes on exactly as it came and the JSON stays valid.

use std::borrow::Cow;
use std::sync::Arc;

use super::policy::GuardrailPolicy;
use crate::api::{replace_strings, string_values, unescape_into};
use crate::config::GuardrailAction;

/// Keys whose string values are not text anyone wrote.
const NOT_TEXT: &[&[u8]] = &[
    b"model",
    b"role",
    b"type",
    b"id",
    b"tool_call_id",
    b"tool_use_id",
    b"call_id",
    b"media_type",
    b"detail",
    b"format",
    b"encrypted_content",
    b"signature",
    b"data",
    b"file_data",
    b"status",
    b"object",
    b"finish_reason",
    b"stop_reason",
    b"system_fingerprint",
    b"service_tier",
    b"reasoning_effort",
    b"tool_choice",
];

/// One rule that fired: which policy, which rule, what it did, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The policy.
    pub policy: Arc<str>,
    /// The rule's name.
    pub rule: String,
    /// What the policy does.
    pub action: GuardrailAction,
    /// The key whose value held the match (`content`, `arguments`, ...).
    pub field: String,
}

impl Hit {
    /// `block`, `redact` or `flag`, for records.
    pub fn action_name(&self) -> &'static str {
        match self.action {
            GuardrailAction::Block => "block",
            GuardrailAction::Redact => "redact",
            GuardrailAction::Flag => "flag",
        }
    }
}

/// What scanning a body concluded.
#[derive(Debug, Default)]
pub struct BodyScan {
    /// Every rule that fired (flags, redactions, and the block if there was one).
    pub hits: Vec<Hit>,
    /// The body with redactions spliced in, when a policy redacted something.
    pub redacted: Option<Vec<u8>>,
    /// The first hit of a blocking policy: the body must not go on.
    pub blocked: Option<Hit>,
}

/// A string value's text (`inner`: between its quotes): borrowed when it has no escapes
/// (most do not), else decoded into `buf` (reused from string to string).
fn text_of<'a>(inner: &'a [u8], buf: &'a mut String) -> Option<&'a str> {
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).ok();
    }
    buf.clear();
    unescape_into(inner, buf)?;
    Some(buf.as_str())
}

/// Scans `body` with `policies` (those on the side being scanned). A blocking match stops
/// the scan at once.
pub fn scan_body(policies: &[Arc<GuardrailPolicy>], body: &[u8]) -> BodyScan {
    let mut scan = BodyScan::default();
    if policies.is_empty() {
        return scan;
    }
    let Some(values) = string_values(body) else {
        return scan;
    };
    let mut replacements = Vec::new();
    let mut buf = String::new();
    for v in values {
        if NOT_TEXT.contains(&v.key) {
            continue;
        }
        let inner = v
            .span
            .end
            .checked_sub(1)
            .and_then(|end| body.get(v.span.start + 1..end));
        let Some(text) = inner.and_then(|inner| text_of(inner, &mut buf)) else {
            continue;
        };
        let mut text = Cow::Borrowed(text);
        if text.starts_with("data:") {
            continue;
        }
        let mut changed = false;
        for p in policies {
            let findings = p.detector.find(&text);
            if findings.is_empty() {
                continue;
            }
            let field = String::from_utf8_lossy(v.key).into_owned();
            for f in &findings {
                let rule = p
                    .detector
                    .rule(f.rule)
                    .map_or_else(String::new, |r| r.name().to_string());
                let hit = Hit {
                    policy: Arc::clone(&p.name),
                    rule,
                    action: p.action,
                    field: field.clone(),
                };
                if p.action == GuardrailAction::Block {
                    scan.hits.push(hit.clone());
                    scan.blocked = Some(hit);
                    return scan;
                }
                scan.hits.push(hit);
            }
            if p.action == GuardrailAction::Redact {
                text = Cow::Owned(p.detector.redact(&text, &findings));
                changed = true;
            }
        }
        if changed {
            replacements.push((v.span, text.into_owned()));
        }
    }
    if !replacements.is_empty() {
        scan.redacted = replace_strings(body, &replacements);
    }
    scan
}
