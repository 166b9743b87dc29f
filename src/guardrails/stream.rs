//! Guardrails on a stream: text arrives in deltas, and only text that no match can still
//! reach is released, redacted as [`Detector::redact`] would redact the whole text.
//!
//! # Hold-back
//!
//! At every position of the unreleased text, and for every rule whose match can begin with
//! the byte there, the scanner starts a run of that rule's anchored DFA (see `live`) and
//! feeds it each byte as deltas arrive. A run ends when no match of its rule can start at
//! its position whatever text follows: its DFA is dead, or it has read the rule's maximum
//! match length plus one byte. Everything before the earliest live run is final: every
//! match starting there is complete and its next byte is known, so the detector decides it
//! (which rule, which end, the check) exactly as on the whole text, and that text is
//! released. The earliest live run's position and what follows are held back.
//!
//! So the hold-back is exactly "the tail where a match could still start": `Hello world. `
//! holds back nothing (the space ends every run), `mail me at bob@exa` holds back `bob@exa`
//! (an email starting at `b` is still open), `… world` holds back `world` (it could become
//! `world@example.com`). A run never outlives its rule's maximum length, so the held-back
//! text is at most [`Detector::max_match_len`] bytes, and only comes near it inside text
//! that looks like the start of a long match (a PEM block waiting for its END line, a JWT).
//!
//! Cost: one DFA transition per live run per byte. Most rules start with a word boundary,
//! so runs begin only where a word does (or at `+`, `(`, `-`): over prose there are one or
//! two at a time. The matcher itself only runs over text about to be released in
//! which a run passed a match state, i.e. when there is something to report.

use std::ops::Deref;

use super::detector::{Detector, Finding};
use super::live::{Run, Step};

/// A finding of a stream; `start` and `end` are byte offsets in the whole text of the
/// stream (all deltas pushed so far, concatenated).
pub type StreamFinding = Finding;

/// Scans one stream's deltas with a [`Detector`]; one scanner per stream. `D` is how the
/// scanner holds the detector: borrowed (`&Detector`) or shared (`Arc<Detector>`, for a
/// scanner that lives in a relayed stream).
#[derive(Debug)]
pub struct StreamScanner<D: Deref<Target = Detector>> {
    det: D,
    redact: bool,
    /// The last released character (look-behind for `\b`), then the unreleased text.
    buf: String,
    /// Stream offset of `buf[0]`.
    base: usize,
    /// Index in `buf` of the first unreleased byte; also where the detector's scan resumes.
    from: usize,
    /// Live runs, by start (the first is where the held-back tail starts).
    runs: Vec<Run>,
    /// Starts of finished runs that had matched and are not released yet: where the
    /// detector must look before releasing text.
    matched: Vec<usize>,
}

impl<D: Deref<Target = Detector>> StreamScanner<D> {
    /// A scanner that writes released text redacted (`[REDACTED:rule_name]`).
    pub fn new(det: D) -> Self {
        Self::with_redaction(det, true)
    }

    /// A scanner that only reports findings (to flag or block a stream): released text is
    /// written unchanged, held back and released exactly as with redaction.
    pub fn detect_only(det: D) -> Self {
        Self::with_redaction(det, false)
    }

    fn with_redaction(det: D, redact: bool) -> Self {
        StreamScanner {
            det,
            redact,
            buf: String::new(),
            base: 0,
            from: 0,
            runs: Vec::new(),
            matched: Vec::new(),
        }
    }

    /// Takes the next delta of the stream; appends to `out` the text that became final
    /// (redacted unless [`detect_only`](Self::detect_only)) and returns its findings.
    pub fn push(&mut self, delta: &str, out: &mut String) -> Vec<StreamFinding> {
        if delta.is_empty() {
            return Vec::new();
        }
        let old = self.buf.len();
        self.buf.push_str(delta);
        self.advance(old);
        self.release(out, false)
    }

    /// Ends the stream: appends the held-back text (redacted) and returns its findings.
    /// The scanner is then ready for a new stream.
    pub fn finish(&mut self, out: &mut String) -> Vec<StreamFinding> {
        let found = self.release(out, true);
        self.buf.clear();
        self.base = 0;
        self.from = 0;
        self.runs.clear();
        self.matched.clear();
        found
    }

    /// Bytes pushed but not yet released.
    pub fn held_back(&self) -> usize {
        self.buf.len() - self.from
    }

    /// Feeds `buf[at..]` to the runs, starting new ones at each char boundary.
    fn advance(&mut self, at: usize) {
        let StreamScanner {
            det,
            buf,
            runs,
            matched,
            ..
        } = self;
        let live = det.live();
        let bytes = buf.as_bytes();
        let mut prev = at.checked_sub(1).and_then(|i| bytes.get(i).copied());
        for (i, &b) in bytes.iter().enumerate().skip(at) {
            runs.retain_mut(|t| match live.step(t, b, i + 1) {
                Step::Open => true,
                Step::Closed => {
                    if t.matched {
                        matched.push(t.start);
                    }
                    false
                }
            });
            // a match can only start on a char boundary
            if (b & 0xC0) != 0x80 {
                live.spawn(i, prev, b, runs, matched);
            }
            prev = Some(b);
        }
    }

    /// Where the held-back tail starts: the earliest live run, or the end of the buffer.
    fn open_start(&self) -> usize {
        self.runs.first().map_or(self.buf.len(), |t| t.start)
    }

    /// Forgets the runs and restarts them at `at` (after a finding that ends inside the open
    /// tail: the detector's scan resumes there, so positions before it no longer count).
    fn restart(&mut self, at: usize) {
        self.runs.clear();
        self.matched.retain(|&s| s < at);
        self.advance(at);
    }

    /// Releases the final text: everything before the earliest live run (all of it at the
    /// end of the stream), with the detector's findings there.
    fn release(&mut self, out: &mut String, at_end: bool) -> Vec<StreamFinding> {
        let mut q = if at_end {
            self.buf.len()
        } else {
            self.open_start()
        };
        let mut found = Vec::new();
        // The matcher only runs where a finished run saw a match: most deltas skip it.
        if at_end || self.matched.iter().any(|&s| s < q) {
            let mut pos = self.from;
            loop {
                let limit = if at_end { usize::MAX } else { q };
                let Some(f) = self.det.next_finding(&self.buf, pos, limit) else {
                    break;
                };
                pos = f.end;
                found.push(f);
                if !at_end && f.end > q {
                    self.restart(f.end);
                    q = self.open_start();
                }
            }
            self.matched.retain(|&s| s >= q);
        }
        if self.redact {
            self.det.redact_range(&self.buf, self.from, q, &found, out);
        } else {
            out.push_str(self.buf.get(self.from..q).unwrap_or_default());
        }
        for f in &mut found {
            f.start += self.base;
            f.end += self.base;
        }
        if at_end {
            self.runs.clear();
            self.matched.clear();
        }
        self.drain_before(q);
        found
    }

    /// Drops the released text before `q`, keeping its last character as look-behind.
    fn drain_before(&mut self, q: usize) {
        let mut keep = q.saturating_sub(1);
        while keep > 0 && !self.buf.is_char_boundary(keep) {
            keep -= 1;
        }
        self.buf.drain(..keep);
        self.base += keep;
        self.from = q - keep;
        for t in &mut self.runs {
            t.start -= keep;
        }
        for s in &mut self.matched {
            *s -= keep;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::string_slice)]
    use super::*;
    use crate::guardrails::samples::{stream_texts, JWT};
    use crate::guardrails::{BuiltinRule, RuleSpec};

    fn all() -> Detector {
        Detector::new(&RuleSpec::all_builtin()).unwrap()
    }

    /// Streams `pieces`; checks the hold-back bound after every push; returns the output
    /// and the findings.
    fn stream(det: &Detector, pieces: &[&str]) -> (String, Vec<Finding>) {
        let mut s = StreamScanner::new(det);
        let mut out = String::new();
        let mut found = Vec::new();
        for p in pieces {
            found.extend(s.push(p, &mut out));
            assert!(s.held_back() <= det.max_match_len());
        }
        found.extend(s.finish(&mut out));
        (out, found)
    }

    fn whole(det: &Detector, text: &str) -> (String, Vec<Finding>) {
        let f = det.find(text);
        (det.redact(text, &f), f)
    }

    fn boundaries(text: &str) -> Vec<usize> {
        (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect()
    }

    #[test]
    fn split_at_every_position_equals_whole_text() {
        let det = all();
        for text in stream_texts() {
            let want = whole(&det, &text);
            for i in boundaries(&text) {
                let got = stream(&det, &[&text[..i], &text[i..]]);
                assert_eq!(got, want, "split at {i}: {text:?}");
            }
        }
    }

    #[test]
    fn three_random_pieces_and_one_char_at_a_time_equal_whole_text() {
        let det = all();
        let mut rng = fastrand::Rng::with_seed(12);
        for text in stream_texts() {
            let want = whole(&det, &text);
            let b = boundaries(&text);
            for _ in 0..50 {
                let mut cuts = [b[rng.usize(..b.len())], b[rng.usize(..b.len())]];
                cuts.sort_unstable();
                let pieces = [&text[..cuts[0]], &text[cuts[0]..cuts[1]], &text[cuts[1]..]];
                assert_eq!(stream(&det, &pieces), want, "cuts {cuts:?}: {text:?}");
            }
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
            assert_eq!(stream(&det, &pieces), want, "char by char: {text:?}");
        }
    }

    /// Random texts made of fragments that start, end or look like findings.
    #[test]
    fn random_texts_in_random_pieces_equal_whole_text() {
        const FRAGMENTS: &[&str] = &[
            " ",
            "\n",
            "a",
            "sk-",
            "sk-ant-",
            "proj-",
            "AKIA",
            "QNRXK7ORD3HNG57Y",
            "@",
            ".",
            "example",
            "com",
            "4111",
            "1111",
            "-",
            "+1",
            "415",
            "555",
            "0132",
            "(",
            ")",
            "DE89",
            "3704",
            "0044",
            "0532",
            "0130",
            "00",
            "eyJhbGciOiJIUzI1NiJ9",
            "é",
            "😀",
            "_",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
            "MIIB",
            "=",
            "512-34-5678",
            "hf_",
            "qWeRtYuIoPaSdFgHjKlZxCvBnMqWeRtYuI",
            "xoxb-",
            "1234567",
        ];
        let det = all();
        let mut rng = fastrand::Rng::with_seed(99);
        for _ in 0..400 {
            let n = rng.usize(1..60);
            let text: String = (0..n)
                .map(|_| FRAGMENTS[rng.usize(..FRAGMENTS.len())])
                .collect();
            let want = whole(&det, &text);
            let b = boundaries(&text);
            for _ in 0..5 {
                let mut cuts = [b[rng.usize(..b.len())], b[rng.usize(..b.len())]];
                cuts.sort_unstable();
                let pieces = [&text[..cuts[0]], &text[cuts[0]..cuts[1]], &text[cuts[1]..]];
                assert_eq!(stream(&det, &pieces), want, "cuts {cuts:?}: {text:?}");
            }
        }
    }

    #[test]
    fn an_email_split_across_three_deltas_is_redacted_whole() {
        let det = all();
        let mut s = StreamScanner::new(&det);
        let mut out = String::new();
        assert!(s.push("Hello world. ", &mut out).is_empty());
        assert_eq!((out.as_str(), s.held_back()), ("Hello world. ", 0));
        assert!(s.push("mail me at bob@exa", &mut out).is_empty());
        assert_eq!(
            (out.as_str(), s.held_back()),
            ("Hello world. mail me at ", 7)
        );
        assert!(s.push("mple.c", &mut out).is_empty());
        let f = s.push("om today", &mut out);
        assert_eq!(out, "Hello world. mail me at [REDACTED:email] ");
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start, f[0].end), (24, 39));
        assert!(s.finish(&mut out).is_empty());
        assert_eq!(out, "Hello world. mail me at [REDACTED:email] today");
    }

    #[test]
    fn prose_holds_back_at_most_its_last_word() {
        let det = all();
        let mut s = StreamScanner::new(&det);
        let mut out = String::new();
        // (delta, bytes held back after it)
        let deltas = [
            (" the quick brown fox", 3), // "fox" could begin fox@example.com
            (" jumps over the lazy dog, and then", 4),
            (" Here is a summary of the report: revenue grew 12% year", 4),
            (" over year.", 5), // "year." too: dots are allowed in local parts
            (" Let me know if you'd like me to draft an email. ", 0),
            ("\n\n1. **Risks**:", 0),
            (" Costs rose 4.5% in 2024 (see p. 12).", 0),
        ];
        for (delta, held) in deltas {
            s.push(delta, &mut out);
            assert_eq!(s.held_back(), held, "after {delta:?}");
        }
        s.finish(&mut out);
        let text: String = deltas.iter().map(|(d, _)| *d).collect();
        assert_eq!(out, text);
    }

    #[test]
    fn hold_back_is_bounded_by_the_open_rules_lengths() {
        let det = all();
        let mut s = StreamScanner::new(&det);
        let mut out = String::new();
        // a long base64 run: an email's local part (at most 64 bytes) after a '+' or '/' is
        // the longest thing that can be open
        let mut rng = fastrand::Rng::with_seed(3);
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for _ in 0..200 {
            let delta: String = (0..16).map(|_| B64[rng.usize(..64)] as char).collect();
            s.push(&delta, &mut out);
            assert!(s.held_back() <= 64, "held {}", s.held_back());
        }
        // inside a PEM block everything is held until the END line, within the rule's bound
        let mut found = s.push("\n-----BEGIN RSA PRIVATE KEY-----\n", &mut out);
        let released = out.len();
        for _ in 0..200 {
            let line: String = (0..64).map(|_| B64[rng.usize(..64)] as char).collect();
            found.extend(s.push(&line, &mut out));
            found.extend(s.push("\n", &mut out));
            assert!(s.held_back() <= BuiltinRule::PrivateKey.max_len());
        }
        assert!(
            out.len() > released,
            "a block longer than the bound is released"
        );
        found.extend(s.finish(&mut out));
        assert_eq!(found.len(), 1, "the BEGIN line alone is the finding");
        assert!(out.contains("[REDACTED:private_key]\n"));
    }

    #[test]
    fn a_jwt_is_held_while_it_could_grow() {
        let det = all();
        let mut s = StreamScanner::new(&det);
        let mut out = String::new();
        let (head, tail) = JWT.split_at(50);
        s.push("Bearer ", &mut out);
        s.push(head, &mut out);
        assert_eq!((out.as_str(), s.held_back()), ("Bearer ", 50));
        s.push(tail, &mut out);
        assert_eq!(out, "Bearer ");
        let f = s.push("\n", &mut out);
        assert_eq!(out, "Bearer [REDACTED:jwt]\n");
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn detect_only_reports_the_same_findings_and_writes_the_text_unchanged() {
        let det = all();
        for text in stream_texts() {
            let (mid_a, mid_b) = (text.len() / 3, 2 * text.len() / 3);
            let b = boundaries(&text);
            let cut = |m: usize| *b.iter().find(|&&i| i >= m).unwrap();
            let (x, y) = (cut(mid_a), cut(mid_b));
            let mut s = StreamScanner::detect_only(&det);
            let mut out = String::new();
            let mut found = s.push(&text[..x], &mut out);
            found.extend(s.push(&text[x..y], &mut out));
            found.extend(s.push(&text[y..], &mut out));
            found.extend(s.finish(&mut out));
            assert_eq!(out, text);
            assert_eq!(found, det.find(&text));
        }
    }

    #[test]
    fn finish_starts_a_new_stream() {
        let det = all();
        let mut s = StreamScanner::new(&det);
        let mut out = String::new();
        s.push("first bob@example.com", &mut out);
        let f = s.finish(&mut out);
        assert_eq!((f[0].start, f[0].end), (6, 21));
        out.clear();
        s.push("bob@example.com", &mut out);
        assert!(s.push("", &mut out).is_empty());
        let f = s.finish(&mut out);
        assert_eq!((f[0].start, f[0].end), (0, 15));
        assert_eq!(out, "[REDACTED:email]");
    }
}
