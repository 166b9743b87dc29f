//! A single-pass scanner that finds where a top-level key's value sits in a JSON object.
//!
//! simd-json validates the body and reads its fields, but a tape has no byte offsets. To
//! forward the original bytes with only the model name replaced, the gateway needs the exact
//! span of the top-level `"model"` value; this scanner finds it without copying. It assumes the
//! input was already validated as a JSON object.

/// A byte range `[start, end)` in the scanned input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonSpan {
    /// First byte of the value (a string's opening quote).
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl JsonSpan {
    /// The spanned bytes of `input` (`None` when the span does not lie in it).
    pub fn slice<'a>(&self, input: &'a [u8]) -> Option<&'a [u8]> {
        input.get(self.start..self.end)
    }
}

/// Skips a string starting at `i` (the opening quote); returns the index after the closing
/// quote. memchr jumps to the next quote or backslash, so long texts are crossed at memory
/// speed.
pub(super) fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b.get(at) == Some(&b'"') {
            return Some(at + 1);
        }
        i = at + 2;
    }
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Skips any value starting at `i`; returns the index after it.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&c) = b.get(j) {
                match c {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Whether `quoted` (a JSON string with its quotes) spells `key`; escapes are decoded, so
/// `"mod\u0065l"` is `model` here as it is to every JSON parser.
fn key_is(quoted: &[u8], key: &str) -> bool {
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default();
    if !inner.contains(&b'\\') {
        return inner == key.as_bytes();
    }
    serde_json::from_slice::<String>(quoted).is_ok_and(|k| k == key)
}

/// Finds the value of `key` among the top-level members of the JSON object in `body`
/// (escaped key spellings included).
pub fn find_top_level_value(body: &[u8], key: &str) -> Option<JsonSpan> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(body, i);
        match body.get(i)? {
            b'}' => return None,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(body, i)?;
        let this_key = body.get(i..key_end)?;
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(body, i + 1);
        let value_end = skip_value(body, i)?;
        if key_is(this_key, key) {
            return Some(JsonSpan {
                start: i,
                end: value_end,
            });
        }
        i = value_end;
    }
}

#[cfg(test)]
// `allow-indexing-slicing-in-tests` does not cover string_slice.
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    fn value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
        find_top_level_value(body.as_bytes(), key).map(|s| &body[s.start..s.end])
    }

    #[test]
    fn finds_top_level_keys_only() {
        let body = r#" { "messages": [{"role":"user","content":"say \"model\": no","model":"inner"}],
            "x": {"model": "nested"}, "model" : "gpt-4o-mini", "stream": true, "n": 12 }"#;
        assert_eq!(value(body, "model"), Some("\"gpt-4o-mini\""));
        assert_eq!(value(body, "stream"), Some("true"));
        assert_eq!(value(body, "n"), Some("12"));
        assert_eq!(value(body, "x"), Some(r#"{"model": "nested"}"#));
        assert_eq!(value(body, "missing"), None);
    }

    #[test]
    fn handles_escapes_in_strings() {
        let body = r#"{"a":"x\\","model":"m\"q"}"#;
        assert_eq!(value(body, "model"), Some(r#""m\"q""#));
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let body = r#"{"a":1,"mod\u0065l":"m"}"#;
        assert_eq!(value(body, "model"), Some("\"m\""));
    }

    #[test]
    fn not_an_object() {
        assert_eq!(value("[1,2]", "model"), None);
        assert_eq!(value("", "model"), None);
    }
}
