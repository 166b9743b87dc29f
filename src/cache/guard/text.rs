//! What the guard reads out of one prompt: words, numbers, quotes, identifiers, names,
//! negations, opposites, directions, script and language.

use std::collections::{HashMap, HashSet};

use unicode_script::{Script, UnicodeScript};

use super::lexicon::{lexicon, DIRECTIONAL, LANGUAGES};

/// One word of the prompt (a hyphenated compound yields one per part).
struct Word {
    lower: String,
    capitalized: bool,
    all_caps: bool,
    sentence_start: bool,
    /// The whole hyphenated compound, lowercase and joined ("wi-fi" -> "wifi").
    compound: Option<String>,
}

/// The features of one prompt the guard compares.
pub(crate) struct Profile {
    /// Lowercase, invisible characters removed, whitespace collapsed, end punctuation trimmed.
    pub normalized: String,
    /// Every lowercase word and joined compound, for "does the other prompt say X" checks.
    pub vocab: HashSet<String>,
    /// Subject words (not filler, not numbers), lightly stemmed, in first-seen order.
    pub content: Vec<String>,
    /// Numbers in order: digits, number words, ordinals (`#n`), `am`/`pm` after a time.
    pub numbers: Vec<String>,
    /// Text inside quotes, lowercase.
    pub quoted: Vec<String>,
    /// Code identifiers, backtick spans, paths and URLs, lowercase.
    pub identifiers: Vec<String>,
    /// Capitalized words not at a sentence start (names, places, products), lowercase.
    pub entities: Vec<String>,
    /// How many negations the prompt holds.
    pub negations: usize,
    /// Opposite-pair uses in order: (pair index, which pole).
    pub polar: Vec<(usize, bool)>,
    /// (directional word, the subject word after it).
    pub directions: Vec<(String, String)>,
    /// Letters per script (Common and Inherited left out).
    pub scripts: HashMap<Script, usize>,
    /// Detected language of a Latin-script prompt, when the function words are clear.
    pub language: Option<&'static str>,
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}'
    ) || (c.is_control() && !c.is_whitespace())
}

/// The text with invisible characters dropped and every kind of space made a plain space.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect()
}

fn normalize(cleaned: &str) -> String {
    let lower = cleaned.to_lowercase();
    let collapsed = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_end_matches(['?', '.', '!', ' ', '？', '。', '！'])
        .to_string()
}

/// Plural and possessive endings off, so "processes" and "process" compare equal.
pub(crate) fn light_stem(word: &str) -> String {
    let n = word.chars().count();
    if let Some(base) = word.strip_suffix("ies").filter(|_| n > 4) {
        return format!("{base}y");
    }
    let es_plural = word.ends_with("sses")
        || word.ends_with("xes")
        || word.ends_with("ches")
        || word.ends_with("shes");
    if let Some(base) = word.strip_suffix("es").filter(|_| n > 4 && es_plural) {
        return base.to_string();
    }
    let s_plural = !word.ends_with("ss") && !word.ends_with("us") && !word.ends_with("is");
    if let Some(base) = word.strip_suffix('s').filter(|_| n > 3 && s_plural) {
        return base.to_string();
    }
    word.to_string()
}

/// The one form a word's near-synonyms are compared under.
pub(crate) fn canonical(stem: &str) -> String {
    lexicon()
        .synonyms
        .get(stem)
        .map_or_else(|| stem.to_string(), |head| (*head).to_string())
}

fn is_filler(word: &str) -> bool {
    lexicon().filler.contains(word)
}

impl Profile {
    pub(crate) fn new(text: &str) -> Self {
        let cleaned = clean(text);
        let normalized = normalize(&cleaned);
        let mut negations = 0;
        let words = split_words(&cleaned, &mut negations);
        let mut vocab = HashSet::new();
        for w in &words {
            vocab.insert(w.lower.clone());
            vocab.insert(light_stem(&w.lower));
            if let Some(c) = &w.compound {
                vocab.insert(c.clone());
            }
        }
        negations += words
            .iter()
            .filter(|w| lexicon().negators.contains(w.lower.as_str()))
            .count();
        let scripts = script_histogram(&cleaned);
        let language = detect_language(&words, &scripts);
        let mut content = Vec::new();
        for w in &words {
            if is_subject_word(&w.lower) {
                let s = canonical(&light_stem(&w.lower));
                if !content.contains(&s) {
                    content.push(s);
                }
            }
        }
        let entities = words
            .iter()
            .filter(|w| {
                w.capitalized
                    && !w.sentence_start
                    && w.lower != "i"
                    && (w.all_caps || !is_filler(&w.lower))
                    && !w.lower.chars().all(|c| c.is_ascii_digit())
            })
            .map(|w| w.compound.clone().unwrap_or_else(|| w.lower.clone()))
            .collect();
        Self {
            numbers: numbers(&cleaned, &words),
            quoted: quoted(&cleaned),
            identifiers: identifiers(&cleaned),
            polar: polar(&words),
            directions: directions(&words),
            normalized,
            vocab,
            content,
            entities,
            negations,
            scripts,
            language,
        }
    }

    /// Whether the other prompt's text contains `needle` (lowercase).
    /// Whether this prompt says `needle` (lowercase): as a word or its plural, or as a
    /// phrase starting and ending at word boundaries.
    pub(crate) fn mentions(&self, needle: &str) -> bool {
        let squashed: String = needle.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.vocab.contains(&squashed) || self.vocab.contains(&light_stem(&squashed)) {
            return true;
        }
        let hay = self.normalized.as_str();
        let word_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        hay.match_indices(&squashed).any(|(at, m)| {
            let before = hay.get(..at).and_then(|s| s.chars().next_back());
            let after = hay.get(at + m.len()..).and_then(|s| s.chars().next());
            let edge_ok =
                |c: Option<char>, inner: Option<char>| !(word_char(c) && word_char(inner));
            edge_ok(before, m.chars().next()) && edge_ok(after, m.chars().next_back())
        })
    }
}

fn is_subject_word(lower: &str) -> bool {
    lower.chars().count() >= 2
        && !is_filler(lower)
        && !lexicon().negators.contains(lower)
        && !lower.chars().any(|c| c.is_ascii_digit())
        && !lexicon().cardinals.contains_key(lower)
        && !lexicon().ordinals.contains_key(lower)
        && !lexicon().multipliers.contains_key(lower)
}

/// Splits the cleaned text into words; counts `n't` negations on the way.
fn split_words(cleaned: &str, negations: &mut usize) -> Vec<Word> {
    let chars: Vec<char> = cleaned.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut sentence_start = true;
    while let Some(&c) = chars.get(i) {
        if !c.is_alphanumeric() {
            if matches!(
                c,
                '.' | '!' | '?' | ':' | ';' | '¿' | '¡' | '。' | '？' | '！'
            ) && chars.get(i + 1).is_none_or(|n| !n.is_alphanumeric())
            {
                sentence_start = true;
            }
            i += 1;
            continue;
        }
        let start = i;
        while let Some(&c) = chars.get(i) {
            let joins = matches!(c, '\'' | '’' | '-')
                && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
                && i > start;
            if c.is_alphanumeric() || joins {
                i += 1;
            } else {
                break;
            }
        }
        let raw: String = chars.iter().take(i).skip(start).collect();
        push_word(&raw, sentence_start, negations, &mut out);
        sentence_start = false;
    }
    out
}

fn push_word(raw: &str, sentence_start: bool, negations: &mut usize, out: &mut Vec<Word>) {
    let raw = raw.replace('’', "'");
    // Contractions: "didn't" -> "did" + a negation; "what's" -> "what". The split is found in
    // the original text and each side lowercased on its own: lowercasing can change a
    // character's length in bytes ("Ⱥ" is 2 bytes, "ⱥ" 3), so an offset found in the
    // lowercased text is no offset into the original.
    let (raw_base, lower_base) = match raw.split_once('\'') {
        Some((raw_base, rest)) => {
            let base = raw_base.to_lowercase();
            if rest.eq_ignore_ascii_case("t") && base.ends_with('n') {
                *negations += 1;
                let stem = match base.as_str() {
                    "can" | "ca" => "can".to_string(),
                    "won" | "wo" => "will".to_string(),
                    _ => base.trim_end_matches('n').to_string(),
                };
                (raw_base.to_string(), stem)
            } else {
                (raw_base.to_string(), base)
            }
        }
        None => (raw.clone(), raw.to_lowercase()),
    };
    let parts: Vec<&str> = raw_base.split('-').filter(|p| !p.is_empty()).collect();
    let lower_parts: Vec<&str> = lower_base.split('-').filter(|p| !p.is_empty()).collect();
    let compound = (parts.len() > 1).then(|| lower_parts.concat());
    for (k, (p, l)) in parts.iter().zip(&lower_parts).enumerate() {
        let first_upper = p.chars().next().is_some_and(char::is_uppercase);
        let mut letters: Vec<char> = p.chars().filter(|c| c.is_alphabetic()).collect();
        // "APIs", "URLs": an acronym's plural is the acronym.
        let acronym_plural = letters.len() >= 3
            && letters
                .split_last()
                .is_some_and(|(last, init)| *last == 's' && init.iter().all(|c| c.is_uppercase()));
        let mut lower = (*l).to_string();
        if acronym_plural {
            letters.pop();
            lower.pop();
        }
        out.push(Word {
            lower,
            capitalized: first_upper,
            all_caps: letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase()),
            sentence_start: sentence_start && k == 0,
            compound: if first_upper { compound.clone() } else { None },
        });
    }
}

fn script_histogram(cleaned: &str) -> HashMap<Script, usize> {
    let mut h = HashMap::new();
    for c in cleaned.chars().filter(|c| c.is_alphabetic()) {
        let s = if c.is_ascii() {
            Script::Latin
        } else {
            c.script()
        };
        if !matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
            *h.entry(s).or_insert(0) += 1;
        }
    }
    h
}

fn detect_language(words: &[Word], scripts: &HashMap<Script, usize>) -> Option<&'static str> {
    let latin = scripts.get(&Script::Latin).copied().unwrap_or(0);
    let total: usize = scripts.values().sum();
    if total == 0 || latin * 2 < total {
        return None;
    }
    let mut hits = [0usize; 32];
    for w in words {
        if let Some(mask) = lexicon().languages.get(w.lower.as_str()) {
            for (bit, count) in hits.iter_mut().enumerate() {
                *count += usize::from(mask & (1 << bit) != 0);
            }
        }
    }
    let mut scores: Vec<(usize, &'static str)> = LANGUAGES
        .iter()
        .zip(hits)
        .map(|((lang, _), n)| (n, *lang))
        .collect();
    scores.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    match (scores.first(), scores.get(1)) {
        (Some(&(best, lang)), Some(&(second, _))) if best >= 2 && best > second => Some(lang),
        _ => None,
    }
}

/// Numbers in reading order. Digits keep their decimal point and lose thousands separators;
/// number words become digits ("twenty-five" -> 25); ordinals are `#n`.
fn numbers(cleaned: &str, words: &[Word]) -> Vec<String> {
    // Digit runs, with their position in the word sequence approximated by reading order:
    // words carry digits too ("2fa", "e0382"), so digits are read from the words themselves
    // and decimals/thousands from the raw text.
    let mut digit_numbers: Vec<String> = Vec::new();
    let chars: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    while let Some(first) = chars.get(i) {
        if !first.is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut s = String::new();
        while let Some(&c) = chars.get(i) {
            let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit() {
                s.push(c);
            } else if c == '.' && next_digit && !s.contains('.') {
                s.push('.');
            } else if c == ','
                && chars
                    .get(i + 1..i + 4)
                    .is_some_and(|d| d.iter().all(char::is_ascii_digit))
                && chars.get(i + 4).is_none_or(|d| !d.is_ascii_digit())
            {
                // thousands separator: dropped
            } else {
                break;
            }
            i += 1;
        }
        let trimmed = s.trim_start_matches('0');
        let mut value = if trimmed.is_empty() || trimmed.starts_with('.') {
            format!("0{trimmed}")
        } else {
            trimmed.to_string()
        };
        let rest: String = chars
            .iter()
            .skip(i)
            .take(3)
            .collect::<String>()
            .to_lowercase();
        let suffix_ok = |sfx: &str| {
            rest.starts_with(sfx)
                && chars
                    .get(i + sfx.len())
                    .is_none_or(|c| !c.is_alphanumeric())
        };
        if ["st", "nd", "rd", "th"].iter().any(|s| suffix_ok(s)) {
            value = format!("#{value}");
        }
        digit_numbers.push(value);
        let after: String = chars
            .iter()
            .skip(i)
            .skip_while(|c| **c == ' ')
            .take(4)
            .collect::<String>()
            .to_lowercase();
        for marker in ["am", "pm", "a.m.", "p.m."] {
            let tail = after.strip_prefix(marker);
            if tail.is_some_and(|t| t.chars().next().is_none_or(|c| !c.is_alphanumeric())) {
                digit_numbers.push(marker.replace('.', ""));
                break;
            }
        }
    }
    // Number words, merged after the digits in their own reading order: a prompt mixing
    // "3" and "three" is rare, and the comparison is per prompt.
    let mut word_numbers: Vec<String> = Vec::new();
    let mut pending_tens: Option<u64> = None;
    for w in words {
        if let Some(&v) = lexicon().cardinals.get(w.lower.as_str()) {
            match pending_tens.take() {
                Some(t) if v < 10 => word_numbers.push((t + v).to_string()),
                Some(t) => {
                    word_numbers.push(t.to_string());
                    pending_tens = (20..100).contains(&v).then_some(v);
                    if pending_tens.is_none() {
                        word_numbers.push(v.to_string());
                    }
                }
                None if (20..100).contains(&v) => pending_tens = Some(v),
                None => word_numbers.push(v.to_string()),
            }
            continue;
        }
        if let Some(t) = pending_tens.take() {
            word_numbers.push(t.to_string());
        }
        if let Some(v) = lexicon().ordinals.get(w.lower.as_str()) {
            word_numbers.push(format!("#{v}"));
        }
        if let Some(factor) = lexicon().multipliers.get(w.lower.as_str()) {
            word_numbers.push((*factor).to_string());
        }
    }
    if let Some(t) = pending_tens {
        word_numbers.push(t.to_string());
    }
    digit_numbers.extend(word_numbers);
    digit_numbers
}

/// Text between quotes: "…", “…”, ‘…’, «…», and '…' when the quote opens a word.
fn quoted(cleaned: &str) -> Vec<String> {
    let chars: Vec<char> = cleaned.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&open) = chars.get(i) {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p));
        let close = match open {
            '"' => Some('"'),
            '“' => Some('”'),
            '‘' => Some('’'),
            '«' => Some('»'),
            '\'' if prev.is_none_or(|c| !c.is_alphanumeric()) => Some('\''),
            _ => None,
        };
        let Some(close) = close else {
            i += 1;
            continue;
        };
        let end = (i + 1..chars.len().min(i + 302)).find(|&j| {
            chars.get(j) == Some(&close)
                && (close != '\'' || chars.get(j + 1).is_none_or(|c| !c.is_alphanumeric()))
        });
        match end {
            Some(j) if j > i + 1 => {
                let inner: String = chars.iter().take(j).skip(i + 1).collect();
                out.push(normalize_fragment(&inner));
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn normalize_fragment(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Backtick spans, paths, URLs and code-shaped words (snake_case, camelCase, a.b, f()).
fn identifiers(cleaned: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cleaned;
    while let Some((_, after)) = rest.split_once('`') {
        let Some((inner, next)) = after.split_once('`') else {
            break;
        };
        let inner = inner.trim();
        if !inner.is_empty() {
            out.push(normalize_fragment(inner));
        }
        rest = next;
    }
    for chunk in cleaned.split_whitespace() {
        let w = chunk
            .trim_start_matches(['"', '\'', '“', '‘', '(', '[', '{', '`', '<'])
            .trim_end_matches([
                '"', '\'', '”', '’', ')', ']', '}', ',', ';', ':', '!', '?', '.', '`', '>',
            ]);
        if w.is_empty() {
            continue;
        }
        let letters = w.chars().any(char::is_alphabetic);
        let is_path = letters
            && (w.contains("://")
                || w.starts_with('/')
                || w.starts_with("~/")
                || w.starts_with("./")
                || (w.contains('/') && w.contains('.')));
        let name = w.split('(').next().unwrap_or(w);
        let call = w.contains('(')
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let snake = w.char_indices().any(|(k, c)| {
            c == '_'
                && k > 0
                && w.get(k + 1..)
                    .is_some_and(|r| r.starts_with(|n: char| n.is_alphanumeric()))
        });
        let dotted = w
            .split('.')
            .filter(|seg| seg.chars().filter(|c| c.is_alphabetic()).count() >= 2)
            .count()
            >= 2
            && !w.contains(' ');
        let camel = w
            .chars()
            .zip(w.chars().skip(1))
            .any(|(a, b)| a.is_lowercase() && b.is_uppercase());
        if is_path || snake || dotted || camel {
            out.push(w.to_lowercase());
        } else if call {
            out.push(name.to_lowercase());
        }
    }
    out
}

/// Uses of opposite pairs in reading order; longer forms first ("turn off" before "off").
fn polar(words: &[Word]) -> Vec<(usize, bool)> {
    let table = &lexicon().polar;
    let mut out = Vec::new();
    let mut i = 0;
    let mut phrase = String::new();
    while i < words.len() {
        let mut matched = None;
        for len in (1..=3).rev() {
            let Some(span) = words.get(i..i + len) else {
                continue;
            };
            phrase.clear();
            for (k, w) in span.iter().enumerate() {
                if k > 0 {
                    phrase.push(' ');
                }
                phrase.push_str(&w.lower);
            }
            if let Some(&(idx, pole)) = table.get(phrase.as_str()) {
                matched = Some((idx, pole, len));
                break;
            }
        }
        match matched {
            Some((idx, pole, len)) => {
                out.push((idx, pole));
                i += len;
            }
            None => i += 1,
        }
    }
    out
}

/// For each directional word, the first subject word within the next three words.
fn directions(words: &[Word]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !DIRECTIONAL.contains(&w.lower.as_str()) {
            continue;
        }
        let target = words
            .iter()
            .skip(i + 1)
            .take(3)
            .find(|n| is_subject_word(&n.lower));
        if let Some(t) = target {
            out.push((w.lower.clone(), light_stem(&t.lower)));
        }
    }
    out
}
