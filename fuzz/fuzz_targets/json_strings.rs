//! Every string value of a JSON body with its key (`api::string_values`), the unescaping
//! (`decode_string`), and the splice that puts redactions back (`replace_strings`): what
//! guardrails scan and rewrite in client bodies and provider answers.
//!
//! Invariants: no panic on any bytes; on valid JSON, every span is a string literal that
//! decodes as serde_json decodes it, the spans come in document order without overlap, and
//! replacing each value by its own text (or by another) leaves valid JSON that reads the same
//! outside the replaced values.
#![no_main]

use infergate::api::{decode_string, replace_strings, string_values};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The scanner assumes validated JSON, but must not panic on anything.
    let values = string_values(data);
    let Ok(original) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let values = values.expect("string_values reads every valid JSON document");
    let mut last_end = 0;
    let mut same = Vec::new();
    let mut marked = Vec::new();
    for v in &values {
        assert!(v.span.start >= last_end, "spans in order, not overlapping");
        last_end = v.span.end;
        let literal = v.span.slice(data).expect("span within the body");
        let expected: String =
            serde_json::from_slice(literal).expect("a span holds one JSON string");
        let decoded = decode_string(data, v.span).expect("decode_string reads the span");
        assert_eq!(decoded, expected);
        same.push((v.span, decoded));
        marked.push((v.span, "[REDACTED]".to_owned()));
    }
    let rewritten = replace_strings(data, &same).expect("spans lie in the body");
    let reread: Value = serde_json::from_slice(&rewritten).expect("valid after the splice");
    assert_eq!(
        reread, original,
        "replacing each string by itself changes nothing"
    );
    let redacted = replace_strings(data, &marked).expect("spans lie in the body");
    let redacted: Value = serde_json::from_slice(&redacted).expect("valid after redaction");
    assert_eq!(count_strings(&redacted), count_strings(&original));
});

/// Strings in a value (object keys not included).
fn count_strings(v: &Value) -> usize {
    match v {
        Value::String(_) => 1,
        Value::Array(a) => a.iter().map(count_strings).sum(),
        Value::Object(m) => m.values().map(count_strings).sum(),
        _ => 0,
    }
}
