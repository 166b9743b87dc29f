//! The semantic guard: a cheap second opinion on a cosine match.
//!
//! Sentence embeddings blur exactly what makes two lookalike prompts need different answers:
//! a digit, a name, a code identifier, a "not", "to" vs "from", "enable" vs "disable", the
//! language of the answer, or text beyond the model's 256-token window. On the dev pairs no
//! cosine threshold alone gets precision above ~0.62. So a semantic hit is served only when
//! the cosine reaches [`DEFAULT_THRESHOLD`] **and** [`guard_allows`] finds no such difference.
//!
//! The rules, in order (the first that fails is the reason recorded with the request):
//!
//! 1. **Truncation**: if the embedder cut either prompt, the full texts must be equal (the
//!    embedding only saw the start).
//! 2. **Script**: same dominant Unicode script, and no script that is a real share of one
//!    prompt but absent from the other.
//! 3. **Language**: for Latin-script prompts, the language told by function words must agree.
//! 4. **Numbers**: the same numbers in the same order (digits, number words, ordinals, am/pm).
//! 5. **Quotes**, **identifiers**, **paths/URLs**: each must appear in the other prompt.
//! 6. **Names**: capitalized words not at a sentence start must appear in the other prompt.
//! 7. **Negation**: the same number of negations.
//! 8. **Opposites**: a pair of opposites (enable/disable, add/remove, pass/fail, to/from...)
//!    used by both prompts must be used with the same poles in the same order.
//! 9. **Direction**: a directional word (to, from, into, than) must point at the same subject
//!    when both subjects appear in both prompts ("USD to EUR" vs "EUR to USD").
//! 10. **Subject swap**: when both prompts share most subject words but each has one the other
//!     lacks ("capital of Austria" vs "capital of Australia", "time complexity" vs "space
//!     complexity"), they ask about different things. Paraphrases either reword broadly (few
//!     shared subject words) or only add words; typos and inflections are matched.
//!
//! Each rule is deliberately conservative: a wrong rejection costs one upstream call, a
//! wrong hit serves a wrong answer.

mod lexicon;
mod text;

use std::fmt;

use text::Profile;

/// Default cosine threshold of the semantic cache (chosen on the dev pairs, together with
/// the guard: see `tests/cache_guard.rs`).
pub const DEFAULT_THRESHOLD: f32 = 0.8;

/// Why the guard refused a semantic match (recorded with the request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardReason {
    /// One prompt was truncated by the embedder and the full texts differ.
    Truncated,
    /// The prompts are written in different scripts.
    Script,
    /// The prompts are in different languages.
    Language(&'static str, &'static str),
    /// The numbers differ (value, count or order).
    Numbers,
    /// A quoted string of one prompt is missing from the other.
    Quoted(String),
    /// A code identifier, path or URL of one prompt is missing from the other.
    Identifier(String),
    /// A name of one prompt is missing from the other.
    Entity(String),
    /// One prompt is negated and the other is not.
    Negation,
    /// Opposite words ("enable" vs "disable"), or the same ones in another order.
    Opposite,
    /// A directional word points at a different subject ("A to B" vs "B to A").
    Direction,
    /// The prompts share a frame but differ in its subject.
    Subject(String, String),
}

impl fmt::Display for GuardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated prompt differs beyond the embedding window"),
            Self::Script => f.write_str("different script"),
            Self::Language(a, b) => write!(f, "different language ({a} vs {b})"),
            Self::Numbers => f.write_str("different numbers"),
            Self::Quoted(q) => write!(f, "quoted text not in both: {q:?}"),
            Self::Identifier(i) => write!(f, "identifier not in both: {i:?}"),
            Self::Entity(e) => write!(f, "name not in both: {e:?}"),
            Self::Negation => f.write_str("different negation"),
            Self::Opposite => f.write_str("opposite words"),
            Self::Direction => f.write_str("different direction"),
            Self::Subject(a, b) => write!(f, "different subject ({a:?} vs {b:?})"),
        }
    }
}

/// The guard's decision on a cosine match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardVerdict {
    /// Nothing found that would make the answers differ.
    Allow,
    /// The prompts differ in a way embeddings blur.
    Reject(GuardReason),
}

impl GuardVerdict {
    /// Whether the match may be served.
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

/// Decides whether a cached answer for prompt `b` may serve prompt `a` (symmetric), given
/// whether the embedder truncated either of them.
pub fn guard_allows(a: &str, b: &str, a_truncated: bool, b_truncated: bool) -> GuardVerdict {
    if a == b {
        return GuardVerdict::Allow;
    }
    let pa = Profile::new(a);
    let pb = Profile::new(b);
    let same_text = pa.normalized == pb.normalized;
    if a_truncated || b_truncated {
        return if same_text {
            GuardVerdict::Allow
        } else {
            GuardVerdict::Reject(GuardReason::Truncated)
        };
    }
    if same_text {
        return GuardVerdict::Allow;
    }
    match first_difference(&pa, &pb) {
        Some(reason) => GuardVerdict::Reject(reason),
        None => GuardVerdict::Allow,
    }
}

fn first_difference(a: &Profile, b: &Profile) -> Option<GuardReason> {
    if scripts_differ(a, b) {
        return Some(GuardReason::Script);
    }
    if let (Some(la), Some(lb)) = (a.language, b.language) {
        if la != lb {
            return Some(GuardReason::Language(la, lb));
        }
    }
    if a.numbers != b.numbers {
        return Some(GuardReason::Numbers);
    }
    if let Some(q) = missing_in(&a.quoted, b).or_else(|| missing_in(&b.quoted, a)) {
        return Some(GuardReason::Quoted(q));
    }
    if let Some(i) = missing_in(&a.identifiers, b).or_else(|| missing_in(&b.identifiers, a)) {
        return Some(GuardReason::Identifier(i));
    }
    // German capitalizes every noun: capitals say nothing about names there.
    if a.language != Some("de") && b.language != Some("de") {
        if let Some(e) = missing_in(&a.entities, b).or_else(|| missing_in(&b.entities, a)) {
            return Some(GuardReason::Entity(e));
        }
    }
    if a.negations != b.negations {
        return Some(GuardReason::Negation);
    }
    if opposites_differ(a, b) {
        return Some(GuardReason::Opposite);
    }
    if directions_differ(a, b) {
        return Some(GuardReason::Direction);
    }
    subject_swap(a, b).map(|(x, y)| GuardReason::Subject(x, y))
}

fn missing_in(items: &[String], other: &Profile) -> Option<String> {
    items.iter().find(|i| !other.mentions(i)).cloned()
}

fn scripts_differ(a: &Profile, b: &Profile) -> bool {
    let total_a: usize = a.scripts.values().sum();
    let total_b: usize = b.scripts.values().sum();
    if total_a == 0 || total_b == 0 {
        return total_a + total_b > 0 && total_a.max(total_b) >= 3;
    }
    let dominant = |p: &Profile| p.scripts.iter().max_by_key(|(_, n)| **n).map(|(s, _)| *s);
    if dominant(a) != dominant(b) {
        return true;
    }
    // A script that is a fifth of one prompt and (almost) absent from the other.
    let share =
        |p: &Profile, total: usize, s| p.scripts.get(s).copied().unwrap_or(0) as f32 / total as f32;
    a.scripts.keys().chain(b.scripts.keys()).any(|s| {
        let (x, y) = (share(a, total_a, s), share(b, total_b, s));
        (x >= 0.2 && y < 0.05) || (y >= 0.2 && x < 0.05)
    })
}

/// Per pair of opposites used by both prompts: the poles, in order, must agree. A prompt that
/// uses both poles against one that uses one of them is left alone (ambiguous).
fn opposites_differ(a: &Profile, b: &Profile) -> bool {
    let poles = |p: &Profile, pair: usize| {
        let mut seq: Vec<bool> = Vec::new();
        for &(idx, pole) in &p.polar {
            if idx == pair && seq.last() != Some(&pole) {
                seq.push(pole);
            }
        }
        seq
    };
    a.polar.iter().any(|&(pair, _)| {
        let (sa, sb) = (poles(a, pair), poles(b, pair));
        if sb.is_empty() || sa == sb {
            return false;
        }
        let both = |s: &[bool]| s.contains(&true) && s.contains(&false);
        // Same poles in another order, or each prompt on a different pole only.
        (both(&sa) && both(&sb)) || (!both(&sa) && !both(&sb))
    })
}

fn directions_differ(a: &Profile, b: &Profile) -> bool {
    let shared = |w: &String| a.content.contains(w) && b.content.contains(w);
    a.directions.iter().any(|(word, _)| {
        let ta: Vec<&String> = a
            .directions
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, t)| t)
            .collect();
        let tb: Vec<&String> = b
            .directions
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, t)| t)
            .collect();
        !tb.is_empty() && ta != tb && ta.iter().chain(&tb).all(|t| shared(t))
    })
}

/// Words that are the same word misspelt or inflected: a long common prefix, or one edit apart.
fn same_word(x: &str, y: &str) -> bool {
    let (cx, cy): (Vec<char>, Vec<char>) = (x.chars().collect(), y.chars().collect());
    let shorter = cx.len().min(cy.len());
    let prefix = cx.iter().zip(&cy).take_while(|(p, q)| p == q).count();
    if prefix >= 5 && prefix * 4 >= shorter * 3 {
        return true;
    }
    shorter >= 5 && cx.first() == cy.first() && edit_distance_at_most_one(&cx, &cy)
}

fn edit_distance_at_most_one(a: &[char], b: &[char]) -> bool {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if b.len() - a.len() > 1 {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    // Equal lengths: the rest after one substitution; else after one insertion into `b`.
    let skip_a = if a.len() == b.len() {
        prefix + 1
    } else {
        prefix
    };
    a.iter().skip(skip_a).eq(b.iter().skip(prefix + 1))
}

/// Both prompts share a frame of subject words, and each puts a different one in it.
fn subject_swap(a: &Profile, b: &Profile) -> Option<(String, String)> {
    let mut only_a: Vec<&String> = a
        .content
        .iter()
        .filter(|w| !b.content.contains(w))
        .collect();
    let mut only_b: Vec<&String> = b
        .content
        .iter()
        .filter(|w| !a.content.contains(w))
        .collect();
    only_a.retain(|x| match only_b.iter().position(|y| same_word(x, y)) {
        Some(k) => {
            only_b.remove(k);
            false
        }
        None => true,
    });
    // Words the other prompt has anyway (e.g. outside the subject words: "open" vs "opening").
    only_a.retain(|x| !b.vocab.contains(x.as_str()));
    only_b.retain(|y| !a.vocab.contains(y.as_str()));
    let shared = a.content.iter().filter(|w| b.content.contains(w)).count();
    let (first_a, first_b) = (only_a.first()?, only_b.first()?);
    (shared >= only_a.len().max(only_b.len())).then(|| ((*first_a).clone(), (*first_b).clone()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn reason(a: &str, b: &str) -> Option<GuardReason> {
        match guard_allows(a, b, false, false) {
            GuardVerdict::Allow => None,
            GuardVerdict::Reject(r) => Some(r),
        }
    }

    /// Text whose lowercase differs in byte length from the original (issue 9: "Ⱥ" is two
    /// bytes, "ⱥ" three) around an apostrophe used to panic with a char-boundary error.
    #[test]
    fn case_mapping_that_changes_length_does_not_panic() {
        let hostile = [
            "ȺȺ'éé what is the capital of France",
            "İstanbul'un nüfusu ne kadar?",
            "ẞ'ȾȾ didn't ΣΑΣ'Σ",
            "'''Ⱥ'",
            "ȺȺ'",
        ];
        for a in hostile {
            for b in [
                "what is the capital of France",
                a,
                "ȺȺ'ÉÉ what is the capital of France",
            ] {
                let _ = guard_allows(a, b, false, false);
                let _ = guard_allows(b, a, true, false);
            }
        }
    }

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            (
                "How do I cancel my account?",
                "I want to cancel my account, how do I do that?",
            ),
            ("what is a monad", "  What is a monad?  "),
            ("Explain what Docker is.", "What is Docker?"),
            (
                "How do I undo my last commit?",
                "how to undo the last commit",
            ),
        ] {
            assert_eq!(reason(a, b), None, "{a} / {b}");
        }
    }

    #[test]
    fn lookalikes_are_rejected_with_a_reason() {
        assert_eq!(
            reason("Order 1234 status", "Order 1243 status"),
            Some(GuardReason::Numbers)
        );
        assert_eq!(
            reason("Turn on wifi", "Turn off wifi"),
            Some(GuardReason::Opposite)
        );
        assert_eq!(
            reason("Does it work offline?", "Doesn't it work offline?"),
            Some(GuardReason::Negation)
        );
        assert_eq!(
            reason("Convert GBP to JPY", "Convert JPY to GBP"),
            Some(GuardReason::Direction)
        );
        assert!(matches!(
            reason("What does `foo_bar` do?", "What does `foo_baz` do?"),
            Some(GuardReason::Identifier(_))
        ));
        assert!(matches!(
            reason("Ship it to Norway", "Ship it to Finland"),
            Some(GuardReason::Entity(_))
        ));
        assert!(matches!(
            reason("How tall is a giraffe?", "How tall is an elephant?"),
            Some(GuardReason::Subject(_, _))
        ));
        assert_eq!(
            reason("Hello, how are you?", "Привет, как дела?"),
            Some(GuardReason::Script)
        );
        assert_eq!(
            guard_allows("same start", "same start but more", true, false),
            GuardVerdict::Reject(GuardReason::Truncated)
        );
        assert_eq!(
            guard_allows("long text", "long text", true, true),
            GuardVerdict::Allow
        );
    }

    #[test]
    fn more_lookalikes() {
        for (a, b) in [
            (
                "Translate 'hello' to Italian",
                "Translate 'hello' to German",
            ),
            ("Set a timer for 10 minutes", "Set a timer for 15 minutes"),
            (
                "How do I lock my screen on Windows?",
                "How do I unlock my screen on Windows?",
            ),
            (
                "Is it safe to eat raw eggs?",
                "Is it dangerous to eat raw eggs?",
            ),
            (
                "Show me the nearest gas station",
                "Show me the cheapest gas station",
            ),
            ("Who wrote Hamlet?", "Who wrote Macbeth?"),
            (
                "How do I make a GET request in Go?",
                "How do I make a POST request in Go?",
            ),
            (
                "What is the population of Tokyo?",
                "What is the area of Tokyo?",
            ),
        ] {
            assert!(reason(a, b).is_some(), "{a} / {b}");
        }
        for (a, b) in [
            (
                "How do I update my billing address?",
                "Change billing address",
            ),
            (
                "How many legs does a spider have?",
                "Number of legs on a spider?",
            ),
            ("Write a haiku about autumn", "Compose a haiku about autumn"),
            (
                "How do I undo a git commit?",
                "How can I revert my last git commit?",
            ),
        ] {
            assert_eq!(reason(a, b), None, "{a} / {b}");
        }
    }

    #[test]
    fn typo_and_number_words_are_tolerated() {
        assert_eq!(reason("reset my password", "reset my pasword"), None);
        assert_eq!(reason("Plan a 3-day trip", "Plan a three-day trip"), None);
        assert_eq!(reason("I was billed twice", "I was double-billed"), None);
        assert_eq!(
            reason(
                "Which REST APIs are idempotent?",
                "idempotent REST API methods"
            ),
            None
        );
        assert_eq!(
            reason("How do I delete a repo?", "how to remove a repository"),
            None
        );
    }

    #[test]
    fn names_match_on_word_boundaries() {
        assert!(matches!(
            reason(
                "How do I sort a list in Java?",
                "How do I sort a list in JavaScript?"
            ),
            Some(GuardReason::Entity(_) | GuardReason::Identifier(_))
        ));
        assert!(reason("Is Ann here?", "Is the annual report here?").is_some());
    }
}
