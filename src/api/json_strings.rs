//! Every string value of a JSON document with the key it belongs to, by byte span, in one
//! pass over the original bytes: what guardrails scan (every text a client sends or a
//! provider returns, in any dialect) and where a redaction is spliced back so the rest of
//! the body goes on exactly as it came. Assumes the input was already validated as JSON.

use super::json_scan::{skip_string, skip_ws, JsonSpan};

/// One string value: its span (quotes included) and the raw (still escaped) key it is the
/// value of; for an array element, the key of the array (`b""` at the top level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringValue<'a> {
    /// Where the value sits, quotes included.
    pub span: JsonSpan,
    /// The key it belongs to.
    pub key: &'a [u8],
}

/// One open object or array and the key the next value in it belongs to.
struct Frame<'a> {
    key: &'a [u8],
}

/// The string values of `body` in document order; `None` when `body` is not well-formed.
pub fn string_values(body: &[u8]) -> Option<Vec<StringValue<'_>>> {
    let mut out = Vec::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut i = 0;
    loop {
        i = skip_ws(body, i);
        let Some(&c) = body.get(i) else {
            return stack.is_empty().then_some(out);
        };
        let current = stack.last().map_or(&b""[..], |f| f.key);
        match c {
            b'{' | b'[' => {
                stack.push(Frame { key: current });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop()?;
                i += 1;
            }
            b',' | b':' => i += 1,
            b'"' => {
                let end = skip_string(body, i)?;
                let next = skip_ws(body, end);
                if body.get(next) == Some(&b':') {
                    // A key: the values that follow in this object belong to it.
                    let key = body.get(i + 1..end - 1)?;
                    stack.last_mut()?.key = key;
                    i = next + 1;
                } else {
                    out.push(StringValue {
                        span: JsonSpan { start: i, end },
                        key: current,
                    });
                    i = end;
                }
            }
            _ => {
                while body.get(i).is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                }) {
                    i += 1;
                }
            }
        }
    }
}

/// `body` with some string values replaced: `(span, new text)` pairs in document order,
/// each new text JSON-encoded into the place of the old value.
pub fn replace_strings(body: &[u8], replacements: &[(JsonSpan, String)]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 64 * replacements.len());
    let mut at = 0;
    for (span, text) in replacements {
        out.extend_from_slice(body.get(at..span.start)?);
        out.extend_from_slice(serde_json::to_string(text).ok()?.as_bytes());
        at = span.end;
    }
    out.extend_from_slice(body.get(at..)?);
    Some(out)
}

/// The decoded text of a string value (`span` with its quotes).
pub fn decode_string(body: &[u8], span: JsonSpan) -> Option<String> {
    let mut out = String::new();
    unescape_into(
        body.get(span.start + 1..span.end.checked_sub(1)?)?,
        &mut out,
    )?;
    Some(out)
}

/// Appends the text of `inner` (a JSON string's bytes between its quotes) to `out`, escapes
/// decoded. `None` (with `out` partly written) when `inner` is not valid UTF-8 or has a bad
/// escape or a lone surrogate, which JSON parsers refuse too.
pub fn unescape_into(inner: &[u8], out: &mut String) -> Option<()> {
    // Escapes are ASCII: the whole is valid UTF-8 exactly when the text between them is.
    let text = std::str::from_utf8(inner).ok()?;
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\\', text.as_bytes().get(at..)?) {
        let slash = at + i;
        out.push_str(text.get(at..slash)?);
        let esc = *inner.get(slash + 1)?;
        let mut next = slash + 2;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(inner.get(next..next + 4)?)?;
                next += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    // a surrogate pair: the low half must follow as `\uDC00`-`\uDFFF`
                    if inner.get(next..next + 2)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(inner.get(next + 2..next + 6)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    next += 6;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        };
        out.push(c);
        at = next;
    }
    out.push_str(text.get(at..)?);
    Some(())
}

fn hex4(digits: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Appends `text` to `out` as a JSON string, quotes included.
pub fn write_string(text: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(out, text);
}

/// Whether `raw` (a key between its quotes, still escaped) spells `key`; escapes are decoded,
/// so `mod\u0065l` is `model` here as it is to every JSON parser.
pub fn key_is(raw: &[u8], key: &str) -> bool {
    if memchr::memchr(b'\\', raw).is_none() {
        return raw == key.as_bytes();
    }
    let mut decoded = String::new();
    unescape_into(raw, &mut decoded).is_some() && decoded == key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(body: &str) -> Vec<(String, String)> {
        string_values(body.as_bytes())
            .unwrap()
            .iter()
            .map(|v| {
                (
                    String::from_utf8(v.key.to_vec()).unwrap(),
                    decode_string(body.as_bytes(), v.span).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn every_string_value_with_its_key() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a \"q\" b"}]},{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\"k\":1}"}}]}],"n":2,"stop":["x","y"],"empty":{}}"#;
        let got = values(body);
        let want = [
            ("model", "m"),
            ("role", "user"),
            ("type", "text"),
            ("text", "a \"q\" b"),
            ("role", "assistant"),
            ("name", "f"),
            ("arguments", "{\"k\":1}"),
            ("stop", "x"),
            ("stop", "y"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        // Unbalanced or cut short: not well-formed.
        assert!(string_values(b"{\"a\":[1,2}").is_none());
        assert!(string_values(b"{\"a\":\"x").is_none());
    }

    #[test]
    fn unescaping_agrees_with_serde_json() {
        let cases = [
            r#""plain""#,
            r#""a \"q\" \\ \/ \b\f\n\r\t end""#,
            r#""\u00e9\u4e2d \ud83d\ude00 é😀""#,
            r#""""#,
        ];
        for quoted in cases {
            let want: String = serde_json::from_str(quoted).unwrap();
            let inner = &quoted.as_bytes()[1..quoted.len() - 1];
            let mut got = String::new();
            unescape_into(inner, &mut got).unwrap();
            assert_eq!(got, want, "{quoted}");
            let mut back = Vec::new();
            write_string(&got, &mut back);
            assert_eq!(serde_json::from_slice::<String>(&back).unwrap(), want);
        }
        for bad in [r"\ud83d", r"\ud83dx", r"\ude00", r"\x", r"\u12", "\\"] {
            assert!(
                unescape_into(bad.as_bytes(), &mut String::new()).is_none(),
                "{bad}"
            );
            assert!(serde_json::from_str::<String>(&format!("\"{bad}\"")).is_err());
        }
        assert!(unescape_into(&[0xff], &mut String::new()).is_none());
        assert!(key_is(b"mod\\u0065l", "model") && key_is(b"model", "model"));
        assert!(!key_is(b"mode", "model") && !key_is(b"mod\\u0065", "model"));
    }

    #[test]
    fn replacements_keep_the_rest_byte_for_byte() {
        let body = br#"{ "a" : "secret sk-1", "b": [ "keep", "x@y.z" ], "c":1 }"#;
        let vals = string_values(body).unwrap();
        let out = replace_strings(
            body,
            &[
                (vals[0].span, "secret [REDACTED]".into()),
                (vals[2].span, "\"quoted\"".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{ "a" : "secret [REDACTED]", "b": [ "keep", "\"quoted\"" ], "c":1 }"#
        );
    }
}
