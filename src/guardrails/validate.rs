//! Checks that run on a rule's regex candidates: checksums (Luhn, IBAN mod 97), a JWT's
//! header, number ranges, and the token shape of API keys (where the token ends, and whether
//! it is a placeholder such as `sk-XXXX…`).
//!
//! A check sees the whole haystack and the candidate's span, and may look at most one
//! character past the candidate's end (never before its start): the stream scanner relies on
//! this when it decides a candidate in a partial text.

/// The characters an API key's token is made of: a key is only a key if the token ends with
/// the candidate (the regex stops at its length bound even inside a longer token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenChars {
    /// `[A-Za-z0-9_-]`: OpenAI, Anthropic, Google keys.
    UrlSafe,
    /// `[A-Za-z0-9-]`: Slack tokens (their parts are joined by dashes).
    AlnumDash,
    /// `[A-Za-z0-9_]`: tokens the regex already ends at a word boundary.
    Word,
}

impl TokenChars {
    fn contains(self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || match self {
                TokenChars::UrlSafe => b == b'_' || b == b'-',
                TokenChars::AlnumDash => b == b'-',
                TokenChars::Word => b == b'_',
            }
    }
}

/// What a candidate of a rule must pass to become a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The regex alone decides (email, PEM blocks, custom rules).
    None,
    /// An API key: ends where its token ends and is not a placeholder.
    Token(TokenChars),
    /// An OpenAI key: a token that is not an Anthropic key (`sk-ant-`) and has a digit
    /// (so `sk-` followed by kebab-case prose is not a key).
    OpenAi,
    /// An Anthropic key: a token with a digit.
    Anthropic,
    /// A card number: 13-19 digits, one kind of separator, a known issuer prefix and length,
    /// Luhn.
    CreditCard,
    /// An IBAN: a known country, its length, mod 97 == 1 (cut to the country's length when
    /// the regex ran on into a following group).
    Iban,
    /// A JWT: the first segment decodes to a JSON object with an `"alg"` string.
    Jwt,
    /// A phone number: 8-15 digits when it starts with `+` (E.164).
    Phone,
    /// A US SSN outside the never-issued ranges.
    Ssn,
}

impl Check {
    /// Whether `hay[start..end]` passes; returns the end of the finding (it can be shorter
    /// than the candidate, for an IBAN followed by another group of characters).
    pub(crate) fn accept(self, hay: &str, start: usize, end: usize) -> Option<usize> {
        let cand = hay.as_bytes().get(start..end)?;
        let next = hay.as_bytes().get(end).copied();
        let ok = match self {
            Check::None => true,
            Check::Token(chars) => token_ends(next, chars) && !placeholder(cand),
            Check::OpenAi => {
                token_ends(next, TokenChars::UrlSafe)
                    && !cand.starts_with(b"sk-ant-")
                    && has_digit(cand)
                    && !placeholder(cand)
            }
            Check::Anthropic => {
                token_ends(next, TokenChars::UrlSafe) && has_digit(cand) && !placeholder(cand)
            }
            Check::CreditCard => card_ok(cand),
            Check::Iban => return iban_end(cand).map(|len| start + len),
            Check::Jwt => token_ends(next, TokenChars::UrlSafe) && jwt_header_ok(cand),
            Check::Phone => phone_ok(cand),
            Check::Ssn => ssn_ok(cand),
        };
        ok.then_some(end)
    }
}

fn token_ends(next: Option<u8>, chars: TokenChars) -> bool {
    next.is_none_or(|b| !chars.contains(b))
}

fn has_digit(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit)
}

/// A placeholder rather than a key: documentation's `EXAMPLE` keys, or one character making
/// up more than a third of the token's letters and digits (`sk-proj-XXXXXXXX…`,
/// `hf_xxxxxxxx…`). A random key of the shortest kind (AWS, 16 random characters) has its
/// most frequent character at most 6 times in 20 with overwhelming probability.
pub(crate) fn placeholder(token: &[u8]) -> bool {
    if token.windows(7).any(|w| w == b"EXAMPLE") {
        return true;
    }
    let mut counts = [0u16; 128];
    let mut total = 0u16;
    for &b in token.iter().filter(|b| b.is_ascii_alphanumeric()) {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c = c.saturating_add(1);
            total = total.saturating_add(1);
        }
    }
    let most = counts.iter().copied().max().unwrap_or(0);
    u32::from(most) * 3 > u32::from(total)
}

/// Luhn over ASCII digits (other bytes skipped).
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    let values = digits
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'));
    for (i, d) in values.enumerate() {
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 {
                x - 9
            } else {
                x
            }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// The issuer ranges of the major networks and the lengths each issues.
fn issuer_length_ok(d: &[u8]) -> bool {
    let prefix = |n: usize| -> u32 {
        d.iter()
            .take(n)
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let len = d.len();
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    match p1 {
        // Visa
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55 and 2221-2720, Mir 2200-2204
        5 | 2 => {
            ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16
                || (2200..=2204).contains(&p4) && (16..=19).contains(&len)
                || matches!(p4, 5018 | 5020 | 5038 | 5893) && (12..=19).contains(&len)
        }
        // Amex 34/37, JCB 3528-3589, Diners 300-305, 36, 38, 39
        3 => {
            matches!(p2, 34 | 37) && len == 15
                || (3528..=3589).contains(&p4) && (16..=19).contains(&len)
                || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&len)
        }
        // Discover 6011, 644-649, 65; UnionPay 62; Maestro 6304, 6759, 6761-6763
        6 => {
            (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || p2 == 62)
                && (16..=19).contains(&len)
                || matches!(p4, 6304 | 6759 | 6761..=6763) && (12..=19).contains(&len)
        }
        _ => false,
    }
}

fn card_ok(cand: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0usize;
    let mut sep: Option<u8> = None;
    for &b in cand {
        if b.is_ascii_digit() {
            match digits.get_mut(n) {
                Some(slot) => *slot = b,
                None => return false,
            }
            n += 1;
        } else if *sep.get_or_insert(b) != b {
            return false; // "4111-1111 1111-1111": one kind of separator per number
        }
    }
    let Some(d) = digits.get(..n) else {
        return false;
    };
    (13..=19).contains(&n) && issuer_length_ok(d) && luhn(d)
}

/// IBAN length by ISO country code (the registry's list).
fn iban_len(cc: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE
        .iter()
        .find(|(code, _)| code.as_slice() == cc)
        .map(|&(_, len)| len)
}

/// The byte length of the IBAN at the start of `cand` (spaces between groups allowed), or
/// `None` if it is not one: unknown country, too short, not ending at a group boundary, or a
/// failed mod-97 check.
fn iban_end(cand: &[u8]) -> Option<usize> {
    let want = iban_len(cand.get(..2)?)?;
    let mut chars = [0u8; 34];
    let mut n = 0usize;
    let mut end = None;
    for (i, &b) in cand.iter().enumerate() {
        if b == b' ' {
            continue;
        }
        *chars.get_mut(n)? = b;
        n += 1;
        if n == want {
            end = Some(i + 1);
            break;
        }
    }
    let end = end?;
    // the IBAN must end where a group does, not inside a run of characters
    if cand.get(end).is_some_and(|&b| b != b' ') {
        return None;
    }
    let iban = chars.get(..want)?;
    let (head, bban) = iban.split_at(4);
    let mut rem = 0u32;
    for &b in bban.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some(end)
}

fn base64url_value(b: u8) -> Option<u32> {
    Some(u32::from(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    }))
}

/// Decodes unpadded base64url; `None` on a character outside the alphabet or a dangling
/// sixth bit group.
pub(crate) fn base64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &b in s {
        acc = (acc << 6) | base64url_value(b)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn jwt_header_ok(cand: &[u8]) -> bool {
    let header = cand.split(|&b| b == b'.').next().unwrap_or_default();
    let Some(json) = base64url_decode(header) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Object(map)) => map.get("alg").is_some_and(|v| v.is_string()),
        _ => false,
    }
}

fn phone_ok(cand: &[u8]) -> bool {
    let digits = cand.iter().filter(|b| b.is_ascii_digit()).count();
    if cand.first() == Some(&b'+') {
        (8..=15).contains(&digits)
    } else {
        (10..=11).contains(&digits)
    }
}

fn ssn_ok(cand: &[u8]) -> bool {
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = cand.get(r)?;
        s.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let (Some(area), Some(group), Some(serial)) = (num(0..3), num(4..6), num(7..11)) else {
        return false;
    };
    // never issued: area 000, 666, 900-999; group 00; serial 0000; and two numbers printed on
    // cards in advertisements (078-05-1120, 123-45-6789)
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && cand != b"078-05-1120"
        && cand != b"123-45-6789"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_valid_and_rejects_a_changed_digit() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"378282246310005"));
    }

    #[test]
    fn cards_need_issuer_length_and_one_separator_kind() {
        assert!(card_ok(b"4111 1111 1111 1111"));
        assert!(card_ok(b"3782-822463-10005"));
        assert!(!card_ok(b"4111-1111 1111-1111"));
        assert!(!card_ok(b"1111111111111117")); // Luhn-valid, no such issuer
        assert!(!card_ok(b"378282246310005000")); // Amex prefix, wrong length
    }

    #[test]
    fn iban_mod97_with_and_without_spaces() {
        assert_eq!(iban_end(b"DE89370400440532013000"), Some(22));
        assert_eq!(iban_end(b"DE89 3704 0044 0532 0130 00"), Some(27));
        assert_eq!(iban_end(b"DE88 3704 0044 0532 0130 00"), None);
        assert_eq!(iban_end(b"GB82 WEST 1234 5698 7654 32"), Some(27));
        // cut to the country's length when a further group follows
        assert_eq!(iban_end(b"BE68 5390 0754 7034 ABCD"), Some(19));
        assert_eq!(iban_end(b"BE68539007547034ABCD"), None);
        assert_eq!(iban_end(b"ZZ68 5390 0754 7034"), None);
    }

    #[test]
    fn base64url_round_trips_known_values() {
        assert_eq!(
            base64url_decode(b"eyJhbGciOiJIUzI1NiJ9").as_deref(),
            Some(&br#"{"alg":"HS256"}"#[..])
        );
        assert_eq!(base64url_decode(b"YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64url_decode(b"Y"), None);
        assert_eq!(base64url_decode(b"a+b/"), None);
    }

    #[test]
    fn jwt_header_needs_alg() {
        assert!(jwt_header_ok(b"eyJhbGciOiJIUzI1NiJ9.e30.sig"));
        // {"typ":"JWT"}
        assert!(!jwt_header_ok(b"eyJ0eXAiOiJKV1QifQ.e30.sig"));
        assert!(!jwt_header_ok(b"eyJhbGciOi.e30.sig"));
    }

    #[test]
    fn ssn_ranges() {
        assert!(ssn_ok(b"512-34-5678"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "512-00-5678",
            "512-34-0000",
            "123-45-6789",
        ] {
            assert!(!ssn_ok(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn placeholders_and_real_looking_tokens() {
        assert!(placeholder(b"AKIAXXXXXXXXXXXXXXXX"));
        assert!(placeholder(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(placeholder(
            b"sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
        ));
        assert!(!placeholder(b"AKIAQNRXK7ORD3HNG57Y"));
        assert!(!placeholder(b"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"));
    }

    #[test]
    fn tokens_end_where_their_characters_end() {
        let hay = "k=AIzaSyA-abcdefghijklmnopqrstuvwxyz01234 x";
        assert_eq!(
            Check::Token(TokenChars::UrlSafe).accept(hay, 2, 41),
            Some(41)
        );
        assert_eq!(Check::Token(TokenChars::UrlSafe).accept(hay, 2, 40), None);
    }
}
