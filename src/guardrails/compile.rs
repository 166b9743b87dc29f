//! From rule specs (config) to checked, compiled rules: groups expanded, names checked,
//! regexes parsed into HIR with ASCII word boundaries, and each rule's length bounds taken
//! from its HIR.

use regex_syntax::hir::{Hir, HirKind, Look};

use super::error::GuardrailError;
use super::rules::{BuiltinRule, RuleGroup, Search};
use super::validate::Check;
use super::MAX_RULE_LEN;

/// A custom rule as written in config: `{ name = "...", regex = "..." }`. Its regex must
/// bound every repetition (the stream scanner needs a maximum match length).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Snake_case name, shown in `[REDACTED:name]`.
    pub name: String,
    /// The regex (Rust `regex` syntax; `\b` is an ASCII word boundary).
    pub regex: String,
}

/// One entry of a detector's rule list: a built-in rule, a whole group, or a custom rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSpec {
    /// One built-in rule.
    Builtin(BuiltinRule),
    /// Every built-in rule of a group.
    Group(RuleGroup),
    /// A rule from config.
    Custom(CustomRule),
}

impl RuleSpec {
    /// The built-in rule or group called `name` (`"openai_key"`, `"secrets"`, `"pii"`).
    pub fn builtin(name: &str) -> Result<Self, GuardrailError> {
        if let Some(rule) = BuiltinRule::from_name(name) {
            return Ok(RuleSpec::Builtin(rule));
        }
        RuleGroup::from_name(name)
            .map(RuleSpec::Group)
            .ok_or_else(|| GuardrailError::UnknownRule(name.to_string()))
    }

    /// A custom rule; its name and regex are checked when the detector is built.
    pub fn custom(name: impl Into<String>, regex: impl Into<String>) -> Self {
        RuleSpec::Custom(CustomRule {
            name: name.into(),
            regex: regex.into(),
        })
    }

    /// Every built-in rule, both groups: the default when a config turns guardrails on
    /// without naming rules.
    pub fn all_builtin() -> Vec<RuleSpec> {
        vec![
            RuleSpec::Group(RuleGroup::Secrets),
            RuleSpec::Group(RuleGroup::Pii),
        ]
    }
}

/// What a detector knows about one of its rules (for markers, records and the hold-back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    name: String,
    group: Option<RuleGroup>,
    max_len: usize,
}

impl RuleInfo {
    /// The rule's name, as in `[REDACTED:name]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The built-in group of the rule; `None` for a custom rule.
    pub fn group(&self) -> Option<RuleGroup> {
        self.group
    }

    /// The longest text, in bytes, one match of the rule can span.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// A rule ready for the matcher: its info, its candidate check, its HIR and how its
/// candidates are looked for.
pub(crate) struct CompiledRule {
    pub(crate) info: RuleInfo,
    pub(crate) check: Check,
    pub(crate) hir: Hir,
    pub(crate) search: Search,
}

/// Expands `specs` into rules in priority order: the chosen built-in rules in catalogue
/// order (so a config's ordering never changes which rule wins), then custom rules in the
/// order given.
pub(crate) fn compile(specs: &[RuleSpec]) -> Result<Vec<CompiledRule>, GuardrailError> {
    let mut chosen = [false; BuiltinRule::ALL.len()];
    let mut custom: Vec<&CustomRule> = Vec::new();
    for spec in specs {
        match spec {
            RuleSpec::Builtin(rule) => choose(&mut chosen, *rule),
            RuleSpec::Group(group) => group.rules().for_each(|r| choose(&mut chosen, r)),
            RuleSpec::Custom(rule) => {
                check_name(&rule.name)?;
                let taken = BuiltinRule::from_name(&rule.name).is_some()
                    || custom.iter().any(|c| c.name == rule.name);
                if taken {
                    return Err(GuardrailError::Duplicate(rule.name.clone()));
                }
                custom.push(rule);
            }
        }
    }
    let mut out = Vec::new();
    for (rule, _) in BuiltinRule::ALL.iter().zip(chosen).filter(|(_, on)| *on) {
        out.push(build(
            rule.name(),
            rule.pattern(),
            Some(rule.group()),
            rule.check(),
            rule.search(),
        )?);
    }
    for rule in custom {
        out.push(build(
            &rule.name,
            &rule.regex,
            None,
            Check::None,
            Search::Custom,
        )?);
    }
    if out.is_empty() {
        return Err(GuardrailError::NoRules);
    }
    Ok(out)
}

fn choose(chosen: &mut [bool], rule: BuiltinRule) {
    if let Some(i) = BuiltinRule::ALL.iter().position(|r| *r == rule) {
        if let Some(slot) = chosen.get_mut(i) {
            *slot = true;
        }
    }
}

fn check_name(name: &str) -> Result<(), GuardrailError> {
    let mut bytes = name.bytes();
    let ok = name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(GuardrailError::BadName(name.to_string()))
    }
}

fn build(
    name: &str,
    pattern: &str,
    group: Option<RuleGroup>,
    check: Check,
    search: Search,
) -> Result<CompiledRule, GuardrailError> {
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| GuardrailError::Regex {
            rule: name.to_string(),
            message: e.to_string(),
        })?;
    let hir = ascii_words(hir);
    let props = hir.properties();
    match props.minimum_len() {
        None => {
            return Err(GuardrailError::Regex {
                rule: name.to_string(),
                message: "the regex can never match".to_string(),
            })
        }
        Some(0) => return Err(GuardrailError::EmptyMatch(name.to_string())),
        Some(_) => {}
    }
    let max_len = props
        .maximum_len()
        .ok_or_else(|| GuardrailError::Unbounded(name.to_string()))?;
    if max_len > MAX_RULE_LEN {
        return Err(GuardrailError::TooLong {
            rule: name.to_string(),
            len: max_len,
            limit: MAX_RULE_LEN,
        });
    }
    Ok(CompiledRule {
        info: RuleInfo {
            name: name.to_string(),
            group,
            max_len,
        },
        check,
        hir,
        search,
    })
}

/// Rewrites Unicode word boundaries as ASCII ones (a letter outside ASCII counts as a
/// non-word character) and drops capture groups (only whole matches are used). ASCII
/// boundaries keep the stream automaton a plain DFA, and rules look for ASCII tokens.
fn ascii_words(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Look(look) => Hir::look(ascii_look(look)),
        HirKind::Capture(cap) => ascii_words(*cap.sub),
        HirKind::Repetition(mut rep) => {
            rep.sub = Box::new(ascii_words(*rep.sub));
            Hir::repetition(rep)
        }
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(ascii_words).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(ascii_words).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Class(class) => Hir::class(class),
    }
}

fn ascii_look(look: Look) -> Look {
    match look {
        Look::WordUnicode => Look::WordAscii,
        Look::WordUnicodeNegate => Look::WordAsciiNegate,
        Look::WordStartUnicode => Look::WordStartAscii,
        Look::WordEndUnicode => Look::WordEndAscii,
        Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
        Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(specs: &[RuleSpec]) -> GuardrailError {
        match compile(specs) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn builtin_max_lengths_are_the_documented_ones() {
        let rules = compile(&RuleSpec::all_builtin()).unwrap();
        assert_eq!(rules.len(), BuiltinRule::ALL.len());
        let mut wrong = Vec::new();
        for (rule, builtin) in rules.iter().zip(BuiltinRule::ALL) {
            assert_eq!(rule.info.name(), builtin.name());
            if rule.info.max_len() != builtin.max_len() {
                wrong.push((builtin.name(), rule.info.max_len(), builtin.max_len()));
            }
        }
        assert!(wrong.is_empty(), "(rule, compiled, documented): {wrong:?}");
    }

    #[test]
    fn groups_expand_in_catalogue_order_without_duplicates() {
        let specs = [
            RuleSpec::builtin("email").unwrap(),
            RuleSpec::builtin("pii").unwrap(),
            RuleSpec::builtin("openai_key").unwrap(),
        ];
        let names: Vec<String> = compile(&specs)
            .unwrap()
            .iter()
            .map(|r| r.info.name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "openai_key",
                "credit_card",
                "iban",
                "email",
                "phone",
                "us_ssn"
            ]
        );
    }

    #[test]
    fn bad_specs_are_refused_with_the_rule_named() {
        assert_eq!(
            RuleSpec::builtin("openai"),
            Err(GuardrailError::UnknownRule("openai".into()))
        );
        assert_eq!(
            err(&[RuleSpec::custom("ticket", "TICKET-[0-9")]),
            GuardrailError::Regex {
                rule: "ticket".into(),
                message: regex_syntax::Parser::new()
                    .parse("TICKET-[0-9")
                    .unwrap_err()
                    .to_string(),
            }
        );
        assert_eq!(
            err(&[RuleSpec::custom("ticket", "TICKET-[0-9]+")]),
            GuardrailError::Unbounded("ticket".into())
        );
        assert_eq!(
            err(&[RuleSpec::custom("ticket", "[0-9]{0,4}")]),
            GuardrailError::EmptyMatch("ticket".into())
        );
        assert_eq!(
            err(&[RuleSpec::custom("Ticket", "T")]),
            GuardrailError::BadName("Ticket".into())
        );
        assert_eq!(
            err(&[RuleSpec::custom("email", "x@y")]),
            GuardrailError::Duplicate("email".into())
        );
        assert_eq!(
            err(&[RuleSpec::custom("big", "[a-z]{9000}")]),
            GuardrailError::TooLong {
                rule: "big".into(),
                len: 9000,
                limit: MAX_RULE_LEN
            }
        );
        assert_eq!(err(&[]), GuardrailError::NoRules);
    }

    #[test]
    fn custom_rules_get_ascii_word_boundaries() {
        let rules = compile(&[RuleSpec::custom("ticket", r"\bT-[0-9]{4}\b")]).unwrap();
        let rule = rules.first().unwrap();
        assert_eq!(rule.info.max_len(), 6);
        assert!(rule.hir.properties().look_set().contains(Look::WordAscii));
        assert!(!rule.hir.properties().look_set().contains(Look::WordUnicode));
    }
}
