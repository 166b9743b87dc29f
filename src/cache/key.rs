//! Cache keys: hashes of JSON requests that ignore key order and whitespace.
//!
//! # Canonical form
//!
//! A request is hashed from a canonical, injective encoding of its parsed JSON value, not
//! from its bytes: object members are visited in sorted key order, whitespace never reaches
//! the hash, strings are length-prefixed raw UTF-8 and numbers are written as `serde_json`
//! parsed them (so `1` and `1.0` differ, like they may upstream). Every value carries a type
//! tag, so no two different JSON values encode alike.
//!
//! The hash is SHA-256 (already a dependency of the gateway), truncated to 128 bits: keys are
//! shared by every tenant in one map, so they must be collision-safe against adversarial
//! input, which a 64-bit or non-cryptographic hash is not. Every key is domain-separated
//! ("exact" vs "semantic scope") and starts with the tenant and the model alias.
//!
//! # Fields that do not count
//!
//! `stream`, `stream_options`, `user`, `metadata` and `store` (top level) only change how an
//! answer is delivered or recorded, not what it is: a streamed and a non-streamed request
//! share an entry (the gateway re-renders a stream from the stored final JSON). `model` is
//! replaced by the route alias held in [`CacheScope`], so two clients naming the same alias
//! share entries while an alias that routes elsewhere does not. Everything else (system
//! prompt, every turn, tools, `tool_choice`, sampling parameters, `response_format`, `n`,
//! `seed`, ...) is part of the key.

use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Top-level request fields that never change the answer, only its delivery or bookkeeping.
pub const IGNORED_FIELDS: [&str; 5] = ["stream", "stream_options", "user", "metadata", "store"];

/// Why a request body could not be turned into a key.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The body is not valid JSON.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
}

/// A 128-bit hash of a normalized JSON value; the same for any key order or whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHash(pub [u8; 16]);

/// Key of the exact cache: tenant, alias and the whole normalized request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactKey(pub [u8; 16]);

/// Key of one semantic index: tenant, alias and everything in the request except the text of
/// the last user message, so an answer is only reused in the same conversation state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeHash(pub [u8; 16]);

/// Who may share cache entries: the tenant and the model alias the client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheScope {
    /// The tenant the virtual key maps to; entries never cross tenants.
    pub tenant: String,
    /// The model alias from the route table (it replaces the request's `model`).
    pub alias: String,
}

impl CacheScope {
    /// Makes a scope for one tenant and alias.
    pub fn new(tenant: impl Into<String>, alias: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            alias: alias.into(),
        }
    }

    /// The exact-cache key of a parsed request in this scope.
    pub fn exact_key(&self, request: &Value) -> ExactKey {
        let mut h = scoped_hasher(b"infergate/exact/v1", &self.tenant, &self.alias);
        encode_request(&mut h, request, None);
        ExactKey(finish(h))
    }

    /// The exact-cache key of a raw request body in this scope.
    pub fn exact_key_bytes(&self, body: &[u8]) -> Result<ExactKey, KeyError> {
        let value: Value = serde_json::from_slice(body)?;
        Ok(self.exact_key(&value))
    }
}

/// Hash of a JSON value independent of key order and whitespace (no fields ignored).
pub fn normalized_hash(value: &Value) -> RequestHash {
    let mut h = Sha256::new();
    h.update(b"infergate/json/v1");
    encode_value(&mut h, value);
    RequestHash(finish(h))
}

/// [`normalized_hash`] of a raw JSON document.
pub fn normalized_hash_bytes(json: &[u8]) -> Result<RequestHash, KeyError> {
    let value: Value = serde_json::from_slice(json)?;
    Ok(normalized_hash(&value))
}

/// Builds semantic-cache keys from requests of a given dialect.
pub struct SemanticKey;

impl SemanticKey {
    /// Splits an OpenAI Chat Completions request into its scope hash and the text of its last
    /// user message.
    ///
    /// `None` when the request cannot be served semantically: no `messages`, the last message
    /// is not from the user (a tool result or an assistant turn), or its content is not text
    /// (any non-text part, e.g. an image, makes it `None`). Text parts of an array content are
    /// joined with `\n`. The scope covers everything else, including the last message's other
    /// fields (e.g. `name`), minus [`IGNORED_FIELDS`] and with `model` replaced by `alias`.
    pub fn from_openai_chat(
        tenant: &str,
        alias: &str,
        request: &Value,
    ) -> Option<(ScopeHash, String)> {
        let messages = request.get("messages")?.as_array()?;
        let last_index = messages.len().checked_sub(1)?;
        let last = messages.get(last_index)?;
        if last.get("role")?.as_str()? != "user" {
            return None;
        }
        let text = user_text(last.get("content")?)?;
        let mut h = scoped_hasher(b"infergate/semantic-scope/v1", tenant, alias);
        encode_request(&mut h, request, Some(last_index));
        Some((ScopeHash(finish(h)), text))
    }
}

/// The text of a user message's content, or `None` when it holds anything but text.
fn user_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, part) in parts.iter().enumerate() {
                if part.get("type")?.as_str()? != "text" {
                    return None;
                }
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(part.get("text")?.as_str()?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn scoped_hasher(domain: &[u8], tenant: &str, alias: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update(domain);
    encode_str(&mut h, tenant);
    encode_str(&mut h, alias);
    h
}

fn finish(h: Sha256) -> [u8; 16] {
    // The first 16 of the digest's 32 bytes.
    let mut out = [0u8; 16];
    for (o, d) in out.iter_mut().zip(h.finalize()) {
        *o = d;
    }
    out
}

/// Encodes a request's top level without the ignored fields and `model`; when `blank_content`
/// is set, the `content` of that message is left out (the semantic scope).
fn encode_request(h: &mut Sha256, request: &Value, blank_content: Option<usize>) {
    let Value::Object(map) = request else {
        encode_value(h, request);
        return;
    };
    let mut keys: Vec<&String> = map
        .keys()
        .filter(|k| k.as_str() != "model" && !IGNORED_FIELDS.contains(&k.as_str()))
        .collect();
    keys.sort_unstable();
    h.update([b'{']);
    h.update((keys.len() as u64).to_le_bytes());
    for k in keys {
        encode_str(h, k);
        match (k.as_str(), blank_content, map.get(k.as_str())) {
            ("messages", Some(idx), Some(Value::Array(msgs))) => {
                h.update([b'[']);
                h.update((msgs.len() as u64).to_le_bytes());
                for (i, m) in msgs.iter().enumerate() {
                    match (i == idx, m) {
                        (true, Value::Object(fields)) => {
                            encode_object(h, fields, Some("content"));
                        }
                        _ => encode_value(h, m),
                    }
                }
            }
            (_, _, Some(v)) => encode_value(h, v),
            (_, _, None) => h.update([b'?']),
        }
    }
}

fn encode_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn encode_object(h: &mut Sha256, map: &serde_json::Map<String, Value>, skip: Option<&str>) {
    let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort_unstable();
    h.update([b'{']);
    h.update((keys.len() as u64).to_le_bytes());
    for k in keys {
        encode_str(h, k);
        if let Some(v) = map.get(k.as_str()) {
            encode_value(h, v);
        }
    }
}

fn encode_value(h: &mut Sha256, value: &Value) {
    match value {
        Value::Null => h.update([b'n']),
        Value::Bool(false) => h.update([b'f']),
        Value::Bool(true) => h.update([b't']),
        Value::Number(n) => {
            h.update([b'#']);
            encode_str(h, &n.to_string());
        }
        Value::String(s) => {
            h.update([b'"']);
            encode_str(h, s);
        }
        Value::Array(items) => {
            h.update([b'[']);
            h.update((items.len() as u64).to_le_bytes());
            for item in items {
                encode_value(h, item);
            }
        }
        Value::Object(map) => encode_object(h, map, None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_and_whitespace_do_not_matter() {
        let a = br#"{"b": [1, 2, {"y": 1, "x": "s"}], "a": true}"#;
        let b = br#"{"a":true,"b":[1,2,{"x":"s","y":1}]}"#;
        assert_eq!(
            normalized_hash_bytes(a).unwrap(),
            normalized_hash_bytes(b).unwrap()
        );
        let c = br#"{"a":true,"b":[2,1,{"x":"s","y":1}]}"#;
        assert_ne!(
            normalized_hash_bytes(a).unwrap(),
            normalized_hash_bytes(c).unwrap()
        );
        assert!(normalized_hash_bytes(b"{nope").is_err());
    }

    #[test]
    fn types_are_distinguished() {
        assert_ne!(normalized_hash(&json!("1")), normalized_hash(&json!(1)));
        assert_ne!(
            normalized_hash(&json!(["ab"])),
            normalized_hash(&json!(["a", "b"]))
        );
        assert_ne!(
            normalized_hash(&json!(null)),
            normalized_hash(&json!(false))
        );
    }

    #[test]
    fn exact_key_ignores_delivery_fields_and_model() {
        let s = CacheScope::new("t1", "fast");
        let a = json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]});
        let b = json!({"model": "other", "stream": true, "stream_options": {"include_usage": true},
            "user": "u", "metadata": {"k": "v"}, "store": false,
            "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(s.exact_key(&a), s.exact_key(&b));
        let c = json!({"model": "gpt-x", "temperature": 0.5,
            "messages": [{"role": "user", "content": "hi"}]});
        assert_ne!(s.exact_key(&a), s.exact_key(&c));
        assert_ne!(s.exact_key(&a), CacheScope::new("t2", "fast").exact_key(&a));
        assert_ne!(s.exact_key(&a), CacheScope::new("t1", "slow").exact_key(&a));
        // Tenant/alias boundaries are length-prefixed: "ab"+"c" differs from "a"+"bc".
        assert_ne!(
            CacheScope::new("ab", "c").exact_key(&a),
            CacheScope::new("a", "bc").exact_key(&a)
        );
    }

    #[test]
    fn semantic_scope_ignores_only_last_user_text() {
        let a = json!({"model": "m", "temperature": 0, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is Rust?"}]});
        let b = json!({"model": "m2", "stream": true, "temperature": 0, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "Explain Rust"}]}]});
        let (sa, ta) = SemanticKey::from_openai_chat("t", "al", &a).unwrap();
        let (sb, tb) = SemanticKey::from_openai_chat("t", "al", &b).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(ta, "What is Rust?");
        assert_eq!(tb, "Explain Rust");

        let other_system = json!({"model": "m", "temperature": 0, "messages": [
            {"role": "system", "content": "be verbose"},
            {"role": "user", "content": "What is Rust?"}]});
        let (so, _) = SemanticKey::from_openai_chat("t", "al", &other_system).unwrap();
        assert_ne!(sa, so);
        let other_temp = json!({"model": "m", "temperature": 1, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is Rust?"}]});
        let (st, _) = SemanticKey::from_openai_chat("t", "al", &other_temp).unwrap();
        assert_ne!(sa, st);
        let (sx, _) = SemanticKey::from_openai_chat("t2", "al", &a).unwrap();
        assert_ne!(sa, sx);
    }

    #[test]
    fn semantic_key_refuses_non_text_or_non_user_last_message() {
        let tool = json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": []},
            {"role": "tool", "content": "sunny"}]});
        assert!(SemanticKey::from_openai_chat("t", "a", &tool).is_none());
        let assistant = json!({"messages": [{"role": "assistant", "content": "hi"}]});
        assert!(SemanticKey::from_openai_chat("t", "a", &assistant).is_none());
        let image = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:..."}}]}]});
        assert!(SemanticKey::from_openai_chat("t", "a", &image).is_none());
        let empty = json!({"messages": []});
        assert!(SemanticKey::from_openai_chat("t", "a", &empty).is_none());
        let multi = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]});
        let (_, t) = SemanticKey::from_openai_chat("t", "a", &multi).unwrap();
        assert_eq!(t, "a\nb");
    }
}
