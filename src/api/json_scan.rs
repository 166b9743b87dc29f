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
pub(crate) fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
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
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Whether `body` is one whole JSON object or array, with nothing but whitespace around it:
/// its brackets balance outside strings and every string is closed. A structural check, not
/// a parse (one pass, strings crossed with memchr): it is what tells a provider's whole
/// answer cut short, or a page that is not JSON, from an answer the gateway may pass on
/// without parsing it.
pub fn is_whole_json(body: &[u8]) -> bool {
    let start = skip_ws(body, 0);
    if !matches!(body.get(start), Some(b'{' | b'[')) {
        return false;
    }
    skip_value(body, start).is_some_and(|end| skip_ws(body, end) == body.len())
}

/// Skips any value starting at `i`; returns the index after it.
pub(crate) fn skip_value(b: &[u8], i: usize) -> Option<usize> {
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

/// Calls `f` with each member of the object whose `{` is at `i`: its raw key (between the
/// quotes, still escaped) and its value's span. Returns the index after the closing `}`;
/// `None` when the object is cut short or malformed, or when `f` returns `None`.
pub(crate) fn for_each_member<'a>(
    b: &'a [u8],
    i: usize,
    mut f: impl FnMut(&'a [u8], JsonSpan) -> Option<()>,
) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key = b.get(i + 1..key_end - 1)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let end = skip_value(b, i)?;
        if end == i {
            return None;
        }
        f(key, JsonSpan { start: i, end })?;
        i = skip_ws(b, end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Calls `f` with the span of each element of the array whose `[` is at `i`. Returns the
/// index after the closing `]`; `None` when the array is cut short or malformed, or when
/// `f` returns `None`.
pub(crate) fn for_each_element(
    b: &[u8],
    i: usize,
    mut f: impl FnMut(JsonSpan) -> Option<()>,
) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        let end = skip_value(b, i)?;
        if end == i {
            return None;
        }
        f(JsonSpan { start: i, end })?;
        i = skip_ws(b, end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b']' => return Some(i + 1),
            _ => return None,
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
    fn whole_json_is_told_from_a_cut_or_foreign_body() {
        for whole in [
            &br#"{}"#[..],
            br#" {"a":[1,{"b":"}]\""}]}"#,
            br#"[{"x":1},{}]"#,
            b"{\"a\":1}\r\n",
        ] {
            assert!(is_whole_json(whole), "{:?}", String::from_utf8_lossy(whole));
        }
        for broken in [
            &b""[..],
            b"   ",
            br#"{"a":[1,2"#,
            br#"{"a":"unterminated}"#,
            br#"{"a":1}}"#,
            br#"{"a":1} trailing"#,
            b"<html><body>502 Bad Gateway</body></html>",
            br#""just a string""#,
            b"42",
        ] {
            assert!(
                !is_whole_json(broken),
                "{:?}",
                String::from_utf8_lossy(broken)
            );
        }
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
    fn members_and_elements_with_their_spans() {
        let body = r#" { "a" : [1, "x\"]" , {"b":null} ] ,"c\u0064":{}, "e":"" } "#;
        let b = body.as_bytes();
        let mut seen = Vec::new();
        let end = for_each_member(b, 1, |k, v| {
            seen.push((
                String::from_utf8(k.to_vec()).unwrap(),
                body[v.start..v.end].to_string(),
            ));
            Some(())
        });
        assert_eq!(end, Some(body.len() - 1));
        assert_eq!(
            seen,
            [
                ("a".to_string(), r#"[1, "x\"]" , {"b":null} ]"#.to_string()),
                (r"c\u0064".to_string(), "{}".to_string()),
                ("e".to_string(), r#""""#.to_string()),
            ]
        );
        let arr = body.find('[').unwrap();
        let mut items = Vec::new();
        for_each_element(b, arr, |v| {
            items.push(body[v.start..v.end].to_string());
            Some(())
        })
        .unwrap();
        assert_eq!(items, ["1", r#""x\"]""#, r#"{"b":null}"#]);
        assert_eq!(for_each_element(b"[]", 0, |_| Some(())), Some(2));
        assert_eq!(for_each_member(b"{ }", 0, |_, _| Some(())), Some(3));
        // cut short, missing colon or comma, trailing comma: malformed
        for bad in [
            &b"{\"a\":1"[..],
            b"{\"a\" 1}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\":1,}",
            b"{1:2}",
        ] {
            assert_eq!(for_each_member(bad, 0, |_, _| Some(())), None, "{bad:?}");
        }
        for bad in [&b"[1"[..], b"[1 2]", b"[1,]", b"[,]"] {
            assert_eq!(for_each_element(bad, 0, |_| Some(())), None, "{bad:?}");
        }
    }

    #[test]
    fn not_an_object() {
        assert_eq!(value("[1,2]", "model"), None);
        assert_eq!(value("", "model"), None);
    }
}
