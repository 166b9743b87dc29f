//! The stream scanner's automata: per rule, an anchored DFA that answers, byte by byte as
//! text arrives, "can a match of this rule still start at this position?". While a run's
//! state is not dead, more text could complete (or lengthen) a match starting there.
//!
//! One DFA per rule rather than one over all rules: a DFA of several rules multiplies their
//! states (16 MB for the built-in rules, against under 1 MB for the rules one by one), and a
//! run that belongs to one rule can be cut at that rule's maximum length (below).
//!
//! Each DFA is built from a relaxed copy of its rule: every repetition allowing more than
//! [`RELAX_ABOVE`] items loses its upper bound (`[A-Za-z0-9+/=]{0,4096}` becomes
//! `[A-Za-z0-9+/=]*`), which keeps PEM bodies and JWT segments from needing a state per count.
//! The relaxed language contains the rule's, so a run that the relaxed DFA declares dead is
//! dead for the rule too. What the relaxation gives up, the length cap gives back: a run is
//! over once it has seen the rule's maximum match length plus one byte, because then every
//! match of the rule at its start is complete and followed by the byte its checks may read.

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Hir, HirKind};

use super::error::GuardrailError;

/// Repetitions allowing more items than this lose their upper bound in the DFA.
pub(crate) const RELAX_ABOVE: u32 = 64;

/// Size limit of one rule's DFA.
const DFA_LIMIT: usize = 16 << 20;

/// The DFA of one rule, with its start state for each look-behind byte.
struct RuleDfa {
    dfa: dense::DFA<Vec<u32>>,
    /// Start state after byte `b` at index `b`; at index 256, at the start of the text.
    starts: Vec<StateID>,
    /// The rule's longest match: a run is over after this many bytes plus one.
    max_len: usize,
}

/// The stream automata of a detector's rules, and for each byte the rules a match can start
/// with it (so a position spawns runs only for those).
pub(crate) struct LiveSet {
    rules: Vec<RuleDfa>,
    /// `first[b]`: the rules whose DFA survives `b` as a first byte after some look-behind.
    first: Vec<Vec<u32>>,
}

impl std::fmt::Debug for LiveSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSet")
            .field("rules", &self.rules.len())
            .field("memory", &self.memory_usage())
            .finish()
    }
}

/// One run of a rule's DFA from a position of the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    /// Where the run started (an index into the scanner's buffer).
    pub(crate) start: usize,
    rule: u32,
    state: StateID,
    /// The run passed a match state: the rule (relaxed) matches at `start`.
    pub(crate) matched: bool,
}

/// What one more byte did to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// More text can still change what matches at the run's start.
    Open,
    /// Nothing that follows can: the run is over.
    Closed,
}

impl LiveSet {
    /// Builds one DFA per rule, from `hirs` (the rules' exact HIRs, relaxed here) and their
    /// maximum match lengths.
    pub(crate) fn build(rules: &[(Hir, usize)]) -> Result<Self, GuardrailError> {
        let mut built = Vec::with_capacity(rules.len());
        for (hir, max_len) in rules {
            built.push(RuleDfa::build(&relax(hir.clone()), *max_len)?);
        }
        let mut first = vec![Vec::new(); 256];
        for (r, rule) in built.iter().enumerate() {
            let r = u32::try_from(r).map_err(|e| GuardrailError::TooComplex(e.to_string()))?;
            for (b, list) in (0..=255u8).zip(first.iter_mut()) {
                let alive = rule
                    .starts
                    .iter()
                    .any(|&s| !rule.dfa.is_dead_state(rule.dfa.next_state(s, b)));
                if alive {
                    list.push(r);
                }
            }
        }
        Ok(LiveSet {
            rules: built,
            first,
        })
    }

    /// Starts, at position `at`, the runs of the rules that can start with `byte` after
    /// `prev` (`None`: start of the text), feeds them `byte`, and appends the live ones to
    /// `runs` (and `at` to `matched` if one is already over with a match).
    #[inline]
    pub(crate) fn spawn(
        &self,
        at: usize,
        prev: Option<u8>,
        byte: u8,
        runs: &mut Vec<Run>,
        matched: &mut Vec<usize>,
    ) {
        let Some(rules) = self.first.get(usize::from(byte)) else {
            return;
        };
        for &r in rules {
            let Some(rule) = self.rules.get(r as usize) else {
                continue;
            };
            let mut run = Run {
                start: at,
                rule: r,
                state: rule.dfa.next_state(rule.start(prev), byte),
                matched: false,
            };
            match rule.step(&mut run, at + 1) {
                Step::Open => runs.push(run),
                Step::Closed if run.matched => matched.push(at),
                Step::Closed => {}
            }
        }
    }

    /// Feeds `byte` (the byte before buffer index `end`) to `run`.
    #[inline]
    pub(crate) fn step(&self, run: &mut Run, byte: u8, end: usize) -> Step {
        match self.rules.get(run.rule as usize) {
            Some(rule) => {
                run.state = rule.dfa.next_state(run.state, byte);
                rule.step(run, end)
            }
            None => Step::Closed,
        }
    }

    /// Heap bytes held by the DFAs and tables.
    pub(crate) fn memory_usage(&self) -> usize {
        let dfas: usize = self.rules.iter().map(|r| r.dfa.memory_usage()).sum();
        let starts = self.rules.len() * 257 * std::mem::size_of::<StateID>();
        let first: usize = self.first.iter().map(|l| l.len() * 4).sum();
        dfas + starts + first
    }
}

impl RuleDfa {
    fn build(hir: &Hir, max_len: usize) -> Result<Self, GuardrailError> {
        let too_big = |e: &dyn std::fmt::Display| GuardrailError::TooComplex(e.to_string());
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(DFA_LIMIT)),
            )
            .build_from_hir(hir)
            .map_err(|e| too_big(&e))?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DFA_LIMIT))
                    .determinize_size_limit(Some(DFA_LIMIT)),
            )
            .build_from_nfa(&nfa)
            .map_err(|e| too_big(&e))?;
        let mut starts = Vec::with_capacity(257);
        for prev in (0..=255u8).map(Some).chain([None]) {
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(prev);
            starts.push(dfa.start_state(&config).map_err(|e| too_big(&e))?);
        }
        Ok(RuleDfa {
            dfa,
            starts,
            max_len,
        })
    }

    #[inline]
    fn start(&self, prev: Option<u8>) -> StateID {
        let i = prev.map_or(256, usize::from);
        self.starts.get(i).copied().unwrap_or(StateID::ZERO)
    }

    /// Classifies `run` after its state was advanced over the byte before index `end`.
    #[inline]
    fn step(&self, run: &mut Run, end: usize) -> Step {
        let state = run.state;
        if self.dfa.is_match_state(state) {
            run.matched = true;
            if self.is_spent(state) {
                return Step::Closed;
            }
        }
        if self.dfa.is_dead_state(state) || end - run.start > self.max_len {
            Step::Closed
        } else {
            Step::Open
        }
    }

    /// Every next byte, and the end of the text, lead to the dead state: what matched at
    /// the run's start is settled. (Asked only of match states, where it removes the
    /// one-byte delay with which a DFA reports matches.)
    fn is_spent(&self, state: StateID) -> bool {
        self.dfa.is_dead_state(self.dfa.next_eoi_state(state))
            && self
                .dfa
                .byte_classes()
                .representatives(..)
                .filter_map(|unit| unit.as_u8())
                .all(|b| self.dfa.is_dead_state(self.dfa.next_state(state, b)))
    }
}

/// `hir` with every repetition allowing more than [`RELAX_ABOVE`] items left unbounded: a
/// superset of its language with a far smaller DFA.
fn relax(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Repetition(mut rep) => {
            if rep.max.is_some_and(|max| max > RELAX_ABOVE) {
                rep.max = None;
            }
            rep.sub = Box::new(relax(*rep.sub));
            Hir::repetition(rep)
        }
        HirKind::Capture(mut cap) => {
            cap.sub = Box::new(relax(*cap.sub));
            Hir::capture(cap)
        }
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(relax).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(relax).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Class(class) => Hir::class(class),
        HirKind::Look(look) => Hir::look(look),
    }
}
