//! The cache key normalizer (`cache::key`): exact keys, the order- and whitespace-free hash,
//! and the semantic scope with the last user text.
//!
//! Invariants: no panic; the key of a body is the key of the same JSON written another way
//! (pretty, keys in another order); the fields that never change an answer (`stream`,
//! `stream_options`, `user`, `metadata`, `store`, `model`) don't change the key; the tenant
//! and the alias do; the semantic scope ignores the last user message's text, and its text
//! is the text of that message.
#![no_main]

use infergate::cache::key::{normalized_hash, normalized_hash_bytes, IGNORED_FIELDS};
use infergate::cache::{CacheScope, SemanticKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// `v` with every object's members in reverse order (serde_json's map keeps them sorted, so
/// the text is built by hand).
fn reversed(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n");
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(" : ");
                reversed(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push_str("[ ");
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                reversed(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let scope = CacheScope::new("tenant", "alias");
    let Ok(key) = scope.exact_key_bytes(data) else {
        assert!(normalized_hash_bytes(data).is_err());
        return;
    };
    let value: Value = serde_json::from_slice(data).expect("the key parsed it");
    let hash = normalized_hash(&value);

    let mut text = String::new();
    reversed(&value, &mut text);
    assert_eq!(
        scope.exact_key_bytes(text.as_bytes()).ok(),
        Some(key),
        "reordered: {text}"
    );
    assert_eq!(normalized_hash_bytes(text.as_bytes()).ok(), Some(hash));
    let pretty = serde_json::to_vec_pretty(&value).expect("a value serializes");
    assert_eq!(scope.exact_key_bytes(&pretty).ok(), Some(key));

    assert_ne!(CacheScope::new("tenant2", "alias").exact_key(&value), key);
    assert_ne!(CacheScope::new("tenant", "alias2").exact_key(&value), key);
    assert_ne!(CacheScope::new("tenantalias", "").exact_key(&value), key);

    let semantic = SemanticKey::from_openai_chat("tenant", "alias", &value);
    if let Value::Object(mut map) = value {
        for field in IGNORED_FIELDS.iter().chain(&["model"]) {
            map.insert((*field).to_owned(), json!({"changed": [1, 2, 3]}));
        }
        let changed = Value::Object(map.clone());
        assert_eq!(
            scope.exact_key(&changed),
            key,
            "ignored fields changed the key"
        );
        if let Some((scope_hash, text)) = semantic {
            let again = SemanticKey::from_openai_chat("tenant", "alias", &changed)
                .expect("the same messages");
            assert_eq!(again, (scope_hash, text.clone()));
            // Another last user text: same scope, that text.
            if let Some(Value::Array(messages)) = map.get_mut("messages") {
                if let Some(Value::Object(last)) = messages.last_mut() {
                    last.insert("content".into(), Value::String(format!("{text}!")));
                }
            }
            let other = SemanticKey::from_openai_chat("tenant", "alias", &Value::Object(map))
                .expect("a last user message with text");
            assert_eq!(
                other.0, scope_hash,
                "the scope depends on the last user text"
            );
            assert_eq!(other.1, format!("{text}!"));
        }
    }
});
