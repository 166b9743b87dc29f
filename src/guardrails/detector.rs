//! The detector: every chosen rule compiled once into one multi-pattern matcher, candidates
//! checked (checksums, token shape), findings non-overlapping and leftmost-first, and
//! redaction into `[REDACTED:rule_name]` markers.
//!
//! # Finding candidates fast
//!
//! One lazy DFA over all rules reads every byte of the text (about 1.7 ns a byte), since no
//! literal starts every rule. So candidates are looked for by a few matchers, each over the
//! rules that can be found the same cheap way ([`Search`]): the rules that start with
//! literals (API keys, PEM blocks, JWTs) in one matcher whose literal prefilter skips text
//! without them; a rule with a literal inside (email's `@`) alone, found from that literal;
//! the rules that need digits (card numbers, phone numbers, SSNs; IBANs, which start with a
//! country code and two digits) only in chains of enough closely spaced digits (or after a
//! country code), found 8 bytes at a time; custom rules everywhere. The leftmost
//! candidate of all matchers (the first rule in priority order on a tie) is the one the
//! single matcher would have reported, or one it would have found after candidates that fail
//! their checks anyway: a region holds every match that can pass its rule's check, so only
//! failing candidates are left unseen. The single matcher stays for anchored retries.

use regex_automata::meta;
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::{Anchored, Input, MatchKind, PatternID};

use super::compile::{compile, RuleInfo, RuleSpec};
use super::error::GuardrailError;
use super::live::LiveSet;
use super::rules::Search;
use super::validate::Check;

/// Which rule of a detector a finding comes from: an index into [`Detector::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(u32);

impl RuleId {
    /// The index of the rule in [`Detector::rules`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One piece of sensitive text: the rule that found it and its byte range, on char
/// boundaries, in the text searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The rule that matched.
    pub rule: RuleId,
    /// First byte of the match.
    pub start: usize,
    /// One past the last byte of the match.
    pub end: usize,
}

/// Finds secrets and personal data in text with a fixed set of rules. Immutable once built
/// and shareable across threads; build it once per config.
///
/// Semantics of [`find`](Detector::find): scanning left to right, at the leftmost position
/// where some rule matches, the first rule in priority order that matches there (its
/// leftmost-first match) is checked; if its check fails, the next rules matching at that
/// position are tried in order; a passing match is a finding and the scan resumes at its
/// end; if none passes, the scan resumes one character later.
#[derive(Debug)]
pub struct Detector {
    rules: Vec<RuleInfo>,
    checks: Vec<Check>,
    /// All rules: anchored retries at a candidate's start.
    matcher: meta::Regex,
    /// The matchers that find candidates (see the module docs).
    searchers: Vec<Searcher>,
    live: LiveSet,
    max_len: usize,
}

/// Size limit of the matcher's NFA.
const MATCHER_LIMIT: usize = 64 << 20;

/// Most searchers a detector has (literal, windowed, custom, and the rules searched alone).
const MAX_SEARCHERS: usize = 8;

/// One matcher over some of the detector's rules, and where it runs.
#[derive(Debug)]
struct Searcher {
    matcher: meta::Regex,
    /// The detector's index of each of the matcher's patterns.
    rules: Vec<usize>,
    /// Only in the regions these find; everywhere without.
    windows: Option<Windows>,
}

/// Where the rules that need digits can match.
#[derive(Debug, Clone, Copy)]
struct Windows {
    /// The fewest digits a passing match of a digit rule has, and the most other bytes
    /// between two of its digits; `None` without digit rules.
    digits: Option<(usize, usize)>,
    /// How many bytes a country-code rule's match can span; `None` without one.
    country_code: Option<usize>,
}

/// What a searcher said last, within one scan.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Unknown,
    /// Its leftmost candidate at or after the position asked: (rule, start, end).
    Found(usize, usize, usize),
    /// Nothing after the position asked.
    Exhausted,
}

impl Detector {
    /// Compiles the rules of `specs` (groups expanded, duplicates merged) into one matcher
    /// and one stream automaton.
    pub fn new(specs: &[RuleSpec]) -> Result<Detector, GuardrailError> {
        let compiled = compile(specs)?;
        let hirs: Vec<_> = compiled.iter().map(|r| r.hir.clone()).collect();
        let matcher = build_matcher(&hirs, true)?;
        let searchers = searchers(&compiled)?;
        let bounded: Vec<_> = compiled
            .iter()
            .map(|r| (r.hir.clone(), r.info.max_len()))
            .collect();
        let live = LiveSet::build(&bounded)?;
        let max_len = compiled.iter().map(|r| r.info.max_len()).max().unwrap_or(0);
        let (rules, checks) = compiled.into_iter().map(|r| (r.info, r.check)).unzip();
        Ok(Detector {
            rules,
            checks,
            matcher,
            searchers,
            live,
            max_len,
        })
    }

    /// The detector's rules, in priority order; a [`RuleId`] indexes this slice.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// The rule behind `id`.
    pub fn rule(&self, id: RuleId) -> Option<&RuleInfo> {
        self.rules.get(id.index())
    }

    /// The rule named `name`, if the detector has it.
    pub fn rule_id(&self, name: &str) -> Option<RuleId> {
        let i = self.rules.iter().position(|r| r.name() == name)?;
        u32::try_from(i).ok().map(RuleId)
    }

    /// The longest text one match of any rule can span: the bound on what a
    /// [`StreamScanner`](super::StreamScanner) holds back.
    pub fn max_match_len(&self) -> usize {
        self.max_len
    }

    /// Heap bytes held by the stream automata (the matcher's caches grow on use and are not
    /// counted).
    pub fn stream_automaton_bytes(&self) -> usize {
        self.live.memory_usage()
    }

    pub(crate) fn live(&self) -> &LiveSet {
        &self.live
    }

    /// Every finding in `text`, in order, non-overlapping.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut slots = [Slot::Unknown; MAX_SEARCHERS];
        while let Some(f) = self.next_in(text, pos, usize::MAX, &mut slots) {
            pos = f.end;
            out.push(f);
        }
        out
    }

    /// Whether `text` holds anything the rules flag (stops at the first finding).
    pub fn is_clean(&self, text: &str) -> bool {
        self.next_finding(text, 0, usize::MAX).is_none()
    }

    /// The first finding at or after byte `pos` of `hay` that starts before `limit`. The
    /// text before `pos` is only look-behind context.
    pub(crate) fn next_finding(&self, hay: &str, pos: usize, limit: usize) -> Option<Finding> {
        self.next_in(hay, pos, limit, &mut [Slot::Unknown; MAX_SEARCHERS])
    }

    /// [`next_finding`](Self::next_finding) with what each searcher said at an earlier
    /// position of the same `hay` (positions only grow within one scan).
    fn next_in(
        &self,
        hay: &str,
        mut pos: usize,
        limit: usize,
        slots: &mut [Slot; MAX_SEARCHERS],
    ) -> Option<Finding> {
        while pos <= hay.len() {
            let mut best: Option<(usize, usize, usize)> = None;
            for (searcher, slot) in self.searchers.iter().zip(slots.iter_mut()) {
                let found = match *slot {
                    Slot::Found(rule, start, end) if start >= pos => Some((rule, start, end)),
                    Slot::Exhausted => None,
                    _ => {
                        let found = searcher.next(hay, pos);
                        *slot = found.map_or(Slot::Exhausted, |(r, s, e)| Slot::Found(r, s, e));
                        found
                    }
                };
                if let Some(c) = found {
                    // leftmost, then first in priority order
                    if best.is_none_or(|b| (c.1, c.0) < (b.1, b.0)) {
                        best = Some(c);
                    }
                }
            }
            let (rule, start, end) = best?;
            if start >= limit {
                return None;
            }
            if let Some(f) = self.accept(hay, rule, start, end) {
                return Some(f);
            }
            pos = next_boundary(hay, start);
        }
        None
    }

    /// Checks the candidate of `rule` at `start..end`; if it fails, the lower-priority
    /// rules that match at `start` (a matcher only reports the first).
    fn accept(&self, hay: &str, rule: usize, start: usize, end: usize) -> Option<Finding> {
        if let Some(f) = self.check(hay, rule, start, end) {
            return Some(f);
        }
        for i in rule + 1..self.rules.len() {
            let pid = PatternID::new(i).ok()?;
            let input = Input::new(hay)
                .span(start..hay.len())
                .anchored(Anchored::Pattern(pid));
            if let Some(m) = self.matcher.search(&input) {
                if let Some(f) = self.check(hay, i, m.start(), m.end()) {
                    return Some(f);
                }
            }
        }
        None
    }

    fn check(&self, hay: &str, rule: usize, start: usize, end: usize) -> Option<Finding> {
        let end = self.checks.get(rule)?.accept(hay, start, end)?;
        let rule = RuleId(u32::try_from(rule).ok()?);
        (end > start && hay.is_char_boundary(end)).then_some(Finding { rule, start, end })
    }

    /// `text` with each finding replaced by `[REDACTED:rule_name]`.
    pub fn redact(&self, text: &str, findings: &[Finding]) -> String {
        let mut out = String::with_capacity(text.len());
        self.redact_range(text, 0, text.len(), findings, &mut out);
        out
    }

    /// Writes `text[from..to]` to `out`, each finding (sorted by start, inside the range)
    /// replaced by its marker. Findings out of order, overlapping, out of the range or off
    /// char boundaries are skipped rather than trusted.
    pub(crate) fn redact_range(
        &self,
        text: &str,
        from: usize,
        to: usize,
        findings: &[Finding],
        out: &mut String,
    ) {
        let mut at = from;
        for f in findings {
            if f.start < at || f.end > to || f.start >= f.end {
                continue;
            }
            let (Some(before), true) = (text.get(at..f.start), text.is_char_boundary(f.end)) else {
                continue;
            };
            out.push_str(before);
            out.push_str("[REDACTED:");
            out.push_str(self.rule(f.rule).map_or("unknown", RuleInfo::name));
            out.push(']');
            at = f.end;
        }
        out.push_str(text.get(at..to).unwrap_or_default());
    }
}

/// The matcher of `hirs`, leftmost-first; `prefilter: false` when it only runs in small
/// regions, where a prefilter cannot pay for itself.
fn build_matcher(
    hirs: &[regex_syntax::hir::Hir],
    prefilter: bool,
) -> Result<meta::Regex, GuardrailError> {
    meta::Builder::new()
        .configure(
            meta::Config::new()
                .match_kind(MatchKind::LeftmostFirst)
                .which_captures(WhichCaptures::Implicit)
                .auto_prefilter(prefilter)
                .nfa_size_limit(Some(MATCHER_LIMIT)),
        )
        .build_many_from_hir(hirs)
        .map_err(|e| GuardrailError::TooComplex(e.to_string()))
}

/// The searchers of `rules` (see the module docs).
fn searchers(rules: &[super::compile::CompiledRule]) -> Result<Vec<Searcher>, GuardrailError> {
    let mut groups: Vec<(Vec<usize>, Option<Windows>)> = Vec::new();
    let of = |pick: &dyn Fn(Search) -> bool| -> Vec<usize> {
        (0..rules.len())
            .filter(|&i| rules.get(i).is_some_and(|r| pick(r.search)))
            .collect()
    };
    groups.push((of(&|s| s == Search::Literal), None));
    for i in of(&|s| s == Search::Inner) {
        groups.push((vec![i], None));
    }
    let windowed = of(&|s| matches!(s, Search::Digits { .. } | Search::CountryCode));
    let mut windows = Windows {
        digits: None,
        country_code: None,
    };
    for &i in &windowed {
        let Some(rule) = rules.get(i) else { continue };
        match rule.search {
            Search::Digits { fewest, gap } => {
                let (least, widest) = windows.digits.unwrap_or((usize::MAX, 0));
                windows.digits = Some((least.min(fewest), widest.max(gap)));
            }
            _ => {
                let len = rule.info.max_len();
                windows.country_code = Some(windows.country_code.unwrap_or(0).max(len));
            }
        }
    }
    groups.push((windowed, Some(windows)));
    groups.push((of(&|s| s == Search::Custom), None));
    let mut out = Vec::new();
    for (ids, windows) in groups {
        if ids.is_empty() {
            continue;
        }
        let hirs: Vec<_> = ids
            .iter()
            .filter_map(|&i| rules.get(i).map(|r| r.hir.clone()))
            .collect();
        out.push(Searcher {
            matcher: build_matcher(&hirs, windows.is_none())?,
            rules: ids,
            windows,
        });
    }
    if out.len() > MAX_SEARCHERS {
        return Err(GuardrailError::TooComplex(format!(
            "{} searchers, at most {MAX_SEARCHERS}",
            out.len()
        )));
    }
    Ok(out)
}

impl Searcher {
    /// The leftmost candidate (rule, start, end) at or after `pos`: the first rule in
    /// priority order that matches there, with its leftmost-first end.
    fn next(&self, hay: &str, pos: usize) -> Option<(usize, usize, usize)> {
        let rule = |m: regex_automata::Match| {
            self.rules
                .get(m.pattern().as_usize())
                .map(|&r| (r, m.start(), m.end()))
        };
        let Some(windows) = &self.windows else {
            let m = self.matcher.search(&Input::new(hay).span(pos..hay.len()))?;
            return rule(m);
        };
        let mut regions = Regions::new(hay.as_bytes(), *windows, pos);
        while let Some((start, end)) = regions.next() {
            let span = start.max(pos)..end.min(hay.len());
            if let Some(m) = self.matcher.search(&Input::new(hay).span(span)) {
                // What matches at that start in the whole text (the region may cut it short).
                let whole = Input::new(hay)
                    .span(m.start()..hay.len())
                    .anchored(Anchored::Yes);
                return rule(self.matcher.search(&whole).unwrap_or(m));
            }
        }
        None
    }
}

/// One pass over a text that yields, in order, the regions where a windowed rule's match
/// that can pass its check may lie. Digits are visited one by one (found 8 bytes at a
/// time): consecutive digits at most `gap` other bytes apart form a chain, and a chain of at
/// least the fewest digits a match needs is a region, from one byte before its first digit
/// (a match starts at most one byte before its first digit: `+`, `(`) to its last (every
/// match ends with a digit). Every match lies within one chain, its separators being at
/// most `gap` bytes. A country code (`[A-Z]{2}[0-9]{2}`) opens a region of the country-code
/// rules' longest match. Regions that overlap or touch are merged, so a match never
/// straddles two; a region is handed out only once the chain it may grow with has ended.
struct Regions<'h> {
    hay: &'h [u8],
    windows: Windows,
    /// Regions ending at or before this are of no use.
    from: usize,
    /// The next word to read.
    w: usize,
    /// The digit bits of the word before `w` not visited yet.
    bits: u64,
    /// The current chain: its first digit, its last digit, how many digits.
    chain: Option<(usize, usize, usize)>,
    /// The region being built.
    open: Option<(usize, usize)>,
}

impl<'h> Regions<'h> {
    /// Regions of `hay` that may hold a match starting at or after `from`: the digits of
    /// such a match are all at or after `from`, so the chains are counted from there.
    fn new(hay: &'h [u8], windows: Windows, from: usize) -> Self {
        Regions {
            hay,
            windows,
            from,
            w: from / 8,
            bits: 0,
            chain: None,
            open: None,
        }
    }

    /// Adds `start..end` to the open region (the span between them too, when they do not
    /// touch: handing a region out is left to where it is known to be complete).
    fn mark(&mut self, start: usize, end: usize) {
        let end = end.min(self.hay.len());
        self.open = Some(match self.open {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }

    /// The next digit's index.
    fn next_digit(&mut self) -> Option<usize> {
        let words = self.hay.len().div_ceil(8);
        while self.bits == 0 {
            if self.w >= words {
                return None;
            }
            self.bits = digit_bits(word(self.hay, self.w));
            self.w += 1;
        }
        let p = 8 * (self.w - 1) + self.bits.trailing_zeros() as usize / 8;
        self.bits &= self.bits - 1;
        Some(p)
    }

    /// The next region, `start..end`, with `end` past `from`.
    fn next(&mut self) -> Option<(usize, usize)> {
        while let Some(p) = self.next_digit() {
            let mut ready = None;
            // A digit that starts a new chain: every later mark starts at `p - 2` or after
            // (a chain's at `p - 1`, a country code's two bytes before its digits), so a
            // region ending before that is complete.
            let chained = match (self.chain, self.windows.digits) {
                (Some((_, last, _)), Some((_, gap))) => p - last <= gap + 1,
                _ => false,
            };
            if !chained {
                if let Some((s, e)) = self.open {
                    if e + 1 < p.saturating_sub(2) {
                        self.open = None;
                        ready = Some((s, e)).filter(|&(_, e)| e > self.from);
                    }
                }
            }
            if let Some((fewest, _)) = self.windows.digits {
                let (first, count) = match self.chain {
                    Some((first, _, count)) if chained => (first, count + 1),
                    _ => (p, 1),
                };
                self.chain = Some((first, p, count));
                if count >= fewest {
                    self.mark(first.saturating_sub(1), p + 1);
                }
            }
            if let Some(len) = self.windows.country_code {
                let at = |i: usize| self.hay.get(i).copied().unwrap_or(0);
                if p >= 2
                    && at(p + 1).is_ascii_digit()
                    && at(p - 1).is_ascii_uppercase()
                    && at(p - 2).is_ascii_uppercase()
                {
                    self.mark(p - 2, p - 2 + len);
                }
            }
            if ready.is_some() {
                return ready;
            }
        }
        self.open.take().filter(|&(_, e)| e > self.from)
    }
}

/// The 8 bytes of word `w` of `hay` (zero past the end) as an integer.
#[inline]
fn word(hay: &[u8], w: usize) -> u64 {
    let start = w * 8;
    if let Some(full) = hay
        .get(start..start + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
    {
        return u64::from_le_bytes(full);
    }
    let mut bytes = [0u8; 8];
    if let Some(tail) = hay.get(start..) {
        for (b, t) in bytes.iter_mut().zip(tail) {
            *b = *t;
        }
    }
    u64::from_le_bytes(bytes)
}

/// The high bit of each byte of `x` that is an ASCII digit.
fn digit_bits(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // digits become 0..=9 with the high bit clear; adding 0x76 sets the high bit of the
    // bytes that are 10 or more (no carry crosses a byte: at most 0x7f + 0x76)
    let y = x ^ 0x3030_3030_3030_3030;
    let ten_or_more = (y & LOW7) + 0x7676_7676_7676_7676;
    !(ten_or_more | y) & HIGH
}

/// The char boundary after byte `i` of `s` (or `s.len() + 1` past the end, to stop a scan).
pub(crate) fn next_boundary(s: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < s.len() && !s.is_char_boundary(j) {
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    #![allow(clippy::string_slice)]
    use super::*;
    use crate::guardrails::samples::{self, positives, NEGATIVES, OPENAI};
    use crate::guardrails::BuiltinRule;

    fn all() -> Detector {
        Detector::new(&RuleSpec::all_builtin()).unwrap()
    }

    fn names(det: &Detector, text: &str) -> Vec<String> {
        det.find(text)
            .iter()
            .map(|f| det.rule(f.rule).unwrap().name().to_string())
            .collect()
    }

    #[test]
    fn every_builtin_rule_finds_its_sample_and_only_it() {
        let det = all();
        for (rule, text) in positives() {
            if rule == "phone" {
                assert_eq!(names(&det, &text), ["phone", "phone"], "{text}");
            } else {
                assert_eq!(names(&det, &text), [rule], "{text}");
            }
        }
    }

    #[test]
    fn hard_negatives_find_nothing() {
        let det = all();
        for text in NEGATIVES {
            assert_eq!(det.find(text), [], "{text}");
            assert!(det.is_clean(text));
        }
    }

    #[test]
    fn redaction_replaces_each_finding_with_its_rule_name() {
        let det = all();
        let text = "mail bob@example.com, card 4111 1111 1111 1111.";
        let f = det.find(text);
        assert_eq!(
            det.redact(text, &f),
            "mail [REDACTED:email], card [REDACTED:credit_card]."
        );
        assert_eq!(&text[f[0].start..f[0].end], "bob@example.com");
    }

    #[test]
    fn anthropic_keys_are_never_openai_keys() {
        let det = Detector::new(&[RuleSpec::Builtin(BuiltinRule::OpenaiKey)]).unwrap();
        let (_, text) = &positives()[0];
        assert_eq!(det.find(text), []);
        let both = Detector::new(&RuleSpec::all_builtin()).unwrap();
        assert_eq!(names(&both, text), ["anthropic_key"]);
    }

    #[test]
    fn a_failed_check_lets_the_next_rule_at_that_position_match() {
        // a JWT-shaped candidate whose header is not JSON is the local part of an email
        let det = Detector::new(&[
            RuleSpec::Builtin(BuiltinRule::Jwt),
            RuleSpec::Builtin(BuiltinRule::Email),
        ])
        .unwrap();
        let text = "to eyJhbGci.eyJzdWIi.abc@example.com now";
        let f = det.find(text);
        assert_eq!(names(&det, text), ["email"]);
        assert_eq!(
            &text[f[0].start..f[0].end],
            "eyJhbGci.eyJzdWIi.abc@example.com"
        );
    }

    #[test]
    fn keys_end_with_their_token() {
        let det = all();
        // 201 characters after sk-proj-: longer than any OpenAI key, so not one
        let long = format!("sk-proj-{}", "aB3".repeat(67));
        assert_eq!(det.find(&long), []);
        // a dash continues the token: the key is the longer token
        let dashed = format!("{OPENAI}-x1 next");
        let f = det.find(&dashed);
        assert_eq!(&dashed[f[0].start..f[0].end], format!("{OPENAI}-x1"));
        assert_eq!(names(&det, &format!("({OPENAI})")), ["openai_key"]);
    }

    #[test]
    fn findings_are_on_char_boundaries_in_unicode_text() {
        let det = all();
        let text = "Grüße 😀 bob@example.com über";
        let f = det.find(text);
        assert_eq!(f.len(), 1);
        assert_eq!(&text[f[0].start..f[0].end], "bob@example.com");
        assert_eq!(det.redact(text, &f), "Grüße 😀 [REDACTED:email] über");
    }

    #[test]
    fn custom_rules_match_after_builtin_ones() {
        let det = Detector::new(&[
            RuleSpec::builtin("email").unwrap(),
            RuleSpec::custom("ticket", r"\bTICKET-[0-9]{4,8}\b"),
        ])
        .unwrap();
        let text = "see TICKET-20931 from ops@example.com, not XTICKET-1234";
        let f = det.find(text);
        assert_eq!(names(&det, text), ["ticket", "email"]);
        assert_eq!(
            det.redact(text, &f),
            "see [REDACTED:ticket] from [REDACTED:email], not XTICKET-1234"
        );
        assert_eq!(det.rule_id("ticket"), Some(f[0].rule));
        assert_eq!(det.rules()[1].group(), None);
    }

    #[test]
    fn redact_skips_findings_it_cannot_trust() {
        let det = all();
        let text = "héllo world";
        let rule = RuleId(0);
        let findings = [
            Finding {
                rule,
                start: 0,
                end: 1,
            },
            Finding {
                rule,
                start: 2,
                end: 3,
            }, // inside 'é'
            Finding {
                rule,
                start: 6,
                end: 99,
            }, // past the end
            Finding {
                rule,
                start: 0,
                end: 5,
            }, // overlaps the first
            Finding {
                rule: RuleId(999),
                start: 7,
                end: 12,
            },
        ];
        assert_eq!(
            det.redact(text, &findings),
            "[REDACTED:anthropic_key]éllo [REDACTED:unknown]"
        );
    }

    /// The single matcher over all rules, as the detector searched before it had
    /// searchers: what `find` must agree with.
    fn reference_find(det: &Detector, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos <= text.len() {
            let Some(m) = det.matcher.search(&Input::new(text).span(pos..text.len())) else {
                break;
            };
            match det.accept(text, m.pattern().as_usize(), m.start(), m.end()) {
                Some(f) => {
                    pos = f.end;
                    out.push(f);
                }
                None => pos = next_boundary(text, m.start()),
            }
        }
        out
    }

    #[test]
    fn searchers_find_what_one_matcher_over_all_rules_finds() {
        const FRAGMENTS: &[&str] = &[
            " ",
            "\n",
            "-",
            ".",
            "(",
            ")",
            "+",
            "+1",
            "+44 ",
            "a",
            "Q3",
            "GB",
            "DE",
            "82",
            "89",
            "WEST",
            "3704",
            "0044",
            "0532",
            "0130",
            "00",
            "4111",
            "1111",
            "5555",
            "4444",
            "1881",
            "4012",
            "8888",
            "415",
            "555",
            "0132",
            "512",
            "34",
            "5678",
            "12",
            "2024",
            "v2.14.0",
            "7",
            "9",
            "0",
            "x@y.org",
            "@",
            "example",
            "com",
            "sk-",
            "é",
            "AKIAQNRXK7ORD3HNG57Y",
            "ticket",
            "TICKET-2093",
            "😀",
        ];
        let dets = [
            all(),
            Detector::new(&[
                RuleSpec::builtin("pii").unwrap(),
                RuleSpec::custom("ticket", r"\bTICKET-[0-9]{4,8}\b"),
            ])
            .unwrap(),
            Detector::new(&[RuleSpec::builtin("iban").unwrap()]).unwrap(),
            Detector::new(&[RuleSpec::builtin("phone").unwrap()]).unwrap(),
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        let mut texts: Vec<String> = samples::stream_texts();
        for _ in 0..600 {
            let n = rng.usize(1..400);
            texts.push(
                (0..n)
                    .map(|_| FRAGMENTS[rng.usize(..FRAGMENTS.len())])
                    .collect(),
            );
        }
        // findings and look-alikes far apart in prose, where regions are few and small
        let prose =
            "The team reviews the report, and revenue grew 12% to $4.2M in Q3 2024 (v2.14.0); \
                     request 3f2b8c1e-7d4a-4e9b-9a61-2c5d8e0f1a37 is done. ";
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..rng.usize(1..12) {
                text.push_str(&prose[..rng.usize(..prose.len())]);
                text.push_str(FRAGMENTS[rng.usize(..FRAGMENTS.len())]);
                text.push_str(FRAGMENTS[rng.usize(..FRAGMENTS.len())]);
                if rng.bool() {
                    text.push_str(&texts[rng.usize(..samples::stream_texts().len())].clone());
                }
            }
            texts.push(text);
        }
        let mut found = 0;
        for det in &dets {
            for text in &texts {
                let want = reference_find(det, text);
                found += want.len();
                assert_eq!(det.find(text), want, "{text:?}");
            }
        }
        assert!(found > 1000, "the texts have findings: {found}");
    }

    #[test]
    fn digit_bits_mark_exactly_the_digits() {
        for b in 0..=255u8 {
            let x = u64::from_le_bytes([b'a', b, b'9', 0, b'0', b'/', b':', 0xb5]);
            let want = [
                false,
                b.is_ascii_digit(),
                true,
                false,
                true,
                false,
                false,
                false,
            ];
            let got: Vec<bool> = (0..8)
                .map(|i| digit_bits(x) >> (8 * i + 7) & 1 == 1)
                .collect();
            assert_eq!(got, want, "{b}");
        }
    }

    #[test]
    fn max_match_len_is_the_longest_rule() {
        let det = all();
        assert_eq!(det.max_match_len(), BuiltinRule::Jwt.max_len());
        let email = Detector::new(&[RuleSpec::builtin("email").unwrap()]).unwrap();
        assert_eq!(email.max_match_len(), BuiltinRule::Email.max_len());
        assert!(det.stream_automaton_bytes() < 4 << 20);
    }
}
