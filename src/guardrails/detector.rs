//! The detector: every chosen rule compiled once into one multi-pattern matcher, candidates
//! checked (checksums, token shape), findings non-overlapping and leftmost-first, and
//! redaction into `[REDACTED:rule_name]` markers.

use regex_automata::meta;
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::{Anchored, Input, MatchKind, PatternID};

use super::compile::{compile, RuleInfo, RuleSpec};
use super::error::GuardrailError;
use super::live::LiveSet;
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
    matcher: meta::Regex,
    live: LiveSet,
    max_len: usize,
}

/// Size limit of the matcher's NFA.
const MATCHER_LIMIT: usize = 64 << 20;

impl Detector {
    /// Compiles the rules of `specs` (groups expanded, duplicates merged) into one matcher
    /// and one stream automaton.
    pub fn new(specs: &[RuleSpec]) -> Result<Detector, GuardrailError> {
        let compiled = compile(specs)?;
        let hirs: Vec<_> = compiled.iter().map(|r| r.hir.clone()).collect();
        let matcher = meta::Builder::new()
            .configure(
                meta::Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .which_captures(WhichCaptures::Implicit)
                    .nfa_size_limit(Some(MATCHER_LIMIT)),
            )
            .build_many_from_hir(&hirs)
            .map_err(|e| GuardrailError::TooComplex(e.to_string()))?;
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
        while let Some(f) = self.next_finding(text, pos, usize::MAX) {
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
    pub(crate) fn next_finding(&self, hay: &str, mut pos: usize, limit: usize) -> Option<Finding> {
        while pos <= hay.len() {
            let m = self.matcher.search(&Input::new(hay).span(pos..hay.len()))?;
            if m.start() >= limit {
                return None;
            }
            if let Some(f) = self.accept(hay, m.pattern(), m.start(), m.end()) {
                return Some(f);
            }
            pos = next_boundary(hay, m.start());
        }
        None
    }

    /// Checks the candidate of `pattern` at `start..end`; if it fails, the lower-priority
    /// rules that match at `start` (the matcher only reported the first).
    fn accept(&self, hay: &str, pattern: PatternID, start: usize, end: usize) -> Option<Finding> {
        if let Some(f) = self.check(hay, pattern.as_usize(), start, end) {
            return Some(f);
        }
        for i in pattern.as_usize() + 1..self.rules.len() {
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
    use crate::guardrails::samples::{positives, NEGATIVES, OPENAI};
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

    #[test]
    fn max_match_len_is_the_longest_rule() {
        let det = all();
        assert_eq!(det.max_match_len(), BuiltinRule::Jwt.max_len());
        let email = Detector::new(&[RuleSpec::builtin("email").unwrap()]).unwrap();
        assert_eq!(email.max_match_len(), BuiltinRule::Email.max_len());
        assert!(det.stream_automaton_bytes() < 4 << 20);
    }
}
