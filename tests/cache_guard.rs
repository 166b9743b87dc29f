//! The semantic guard on the hand-labelled dev pairs: cosine alone vs cosine + guard.
//!
//! A pair is a predicted hit when its reference cosine reaches the threshold (and, with the
//! guard, when `guard_allows` passes). Truncation cannot be known without the tokenizer here:
//! a text over 1000 characters (well past 256 word pieces for English prose) counts as
//! truncated, which covers the two dev texts longer than 256 tokens.
//! `GUARD_DEBUG=1 cargo test --test cache_guard -- --nocapture` lists every decision.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use infergate::cache::guard::{guard_allows, GuardVerdict, DEFAULT_THRESHOLD};

const PAIRS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/minilm/pairs-dev.jsonl"
));

const TRUNCATION_CHARS: usize = 1000;

struct Pair {
    a: String,
    b: String,
    hit: bool,
    cosine: f32,
    verdict: GuardVerdict,
}

fn pairs() -> Vec<Pair> {
    PAIRS
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("pair line is JSON");
            let a = v["a"].as_str().expect("a").to_string();
            let b = v["b"].as_str().expect("b").to_string();
            let verdict = guard_allows(
                &a,
                &b,
                a.chars().count() > TRUNCATION_CHARS,
                b.chars().count() > TRUNCATION_CHARS,
            );
            Pair {
                hit: v["label"] == "hit",
                cosine: v["cosine"].as_f64().expect("cosine") as f32,
                a,
                b,
                verdict,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Scores {
    precision: f64,
    recall: f64,
    f1: f64,
    tp: usize,
    fp: usize,
}

fn score(pairs: &[Pair], threshold: f32, with_guard: bool) -> Scores {
    let (mut tp, mut fp, mut positives) = (0, 0, 0);
    for p in pairs {
        positives += usize::from(p.hit);
        let predicted = p.cosine >= threshold && (!with_guard || p.verdict.allowed());
        match (predicted, p.hit) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            _ => {}
        }
    }
    let precision = if tp + fp == 0 {
        0.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let recall = tp as f64 / positives.max(1) as f64;
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Scores {
        precision,
        recall,
        f1,
        tp,
        fp,
    }
}

#[test]
fn guard_reaches_precision_with_enough_recall_on_dev_pairs() {
    let pairs = pairs();
    assert_eq!(pairs.len(), 150);
    if std::env::var_os("GUARD_DEBUG").is_some() {
        for p in &pairs {
            let predicted = p.cosine >= DEFAULT_THRESHOLD && p.verdict.allowed();
            let mark = match (predicted, p.hit) {
                (true, false) => "FP",
                (false, true) => "FN",
                _ => "ok",
            };
            let reason = match &p.verdict {
                GuardVerdict::Allow => "allow".to_string(),
                GuardVerdict::Reject(r) => r.to_string(),
            };
            let short = |s: &str| s.chars().take(70).collect::<String>();
            println!(
                "{mark} {} {:.3} {reason} | {:?} | {:?}",
                if p.hit { "hit " } else { "miss" },
                p.cosine,
                short(&p.a),
                short(&p.b)
            );
        }
    }
    println!("threshold | cosine only: P / R / F1 | cosine + guard: P / R / F1 (TP, FP)");
    for t in [0.70, 0.75, 0.80, 0.85, 0.90] {
        let (c, g) = (score(&pairs, t, false), score(&pairs, t, true));
        println!(
            "{t:.2}{} | {:.3} / {:.3} / {:.3} | {:.3} / {:.3} / {:.3} ({}, {})",
            if t == DEFAULT_THRESHOLD { "*" } else { " " },
            c.precision,
            c.recall,
            c.f1,
            g.precision,
            g.recall,
            g.f1,
            g.tp,
            g.fp
        );
    }
    let without = score(&pairs, DEFAULT_THRESHOLD, false);
    let with = score(&pairs, DEFAULT_THRESHOLD, true);
    println!(
        "default threshold {DEFAULT_THRESHOLD}: without guard {without:?}, with guard {with:?}"
    );
    assert!(with.precision >= 0.95, "precision {with:?}");
    assert!(with.recall >= 0.5, "recall {with:?}");
}
