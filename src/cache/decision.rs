//! The semantic cache's decision on one embedded prompt: the nearest entry of its scope, the
//! route's threshold, then the guard.
//!
//! This is the CPU-heavy part of a semantic lookup (a scan of the scope: ~1 ms at 100k
//! entries, 17-27 ms at 1M; the guard: ~50 µs), so it runs on the embedder thread, right after
//! the forward pass, never on a shard: [`super::SemanticDecider`] queues it there. It is a plain
//! function so it can be tested and measured on its own.

use std::fmt;
use std::time::Instant;

use super::{guard_allows, Candidate, GuardReason, GuardVerdict, ScopeHash, SemanticIndex};
use crate::embed::Embedding;

/// What one semantic lookup asks: where to look, what for, and how the route uses the cache.
#[derive(Clone, Debug)]
pub struct SemanticQuery {
    /// The conversation state the prompt belongs to (tenant, alias, everything but the last
    /// user message): only entries of this scope may answer.
    pub scope: ScopeHash,
    /// The last user message: embedded, and compared with a candidate's prompt by the guard.
    pub prompt: String,
    /// Cosine similarity a candidate needs before the guard is asked (the route's).
    pub threshold: f32,
    /// Whether to search at all: `false` for `x-infergate-cache: refresh`, which only needs
    /// the embedding to store the fresh answer.
    pub search: bool,
}

/// A candidate that reached the threshold but that the guard refused; the request's record
/// says so (`cache_note`).
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The candidate's cosine similarity to the prompt.
    pub similarity: f32,
    /// What the guard found between the two prompts.
    pub reason: GuardReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "semantic candidate {:.4} refused by the guard: {}",
            self.similarity, self.reason
        )
    }
}

/// The semantic cache's answer for one prompt.
#[derive(Debug)]
pub enum CacheDecision {
    /// Serve this entry: it reached the threshold and the guard found no difference.
    Hit(Candidate),
    /// Nothing to serve. The upstream answer is to be stored under `embedding`, with
    /// `prompt` for the guard of later lookups (both handed back so the shard need not keep a
    /// copy while it waits).
    Miss {
        /// The prompt looked up.
        prompt: String,
        /// Its embedding.
        embedding: Embedding,
        /// The candidate above the threshold that the guard refused, if there was one.
        refused: Option<Refusal>,
    },
}

/// Decides on an embedded prompt: the nearest live entry of `query.scope`, served when it
/// reaches `query.threshold` and the guard allows it. Runs on the embedder thread.
pub fn decide(
    index: &SemanticIndex,
    query: SemanticQuery,
    embedding: Embedding,
    now: Instant,
) -> CacheDecision {
    let mut refused = None;
    if query.search {
        if let Some(c) = index.nearest(&query.scope, &embedding.vector, now) {
            if c.similarity >= query.threshold {
                match guard_allows(
                    &query.prompt,
                    &c.entry.prompt,
                    embedding.truncated,
                    c.entry.truncated,
                ) {
                    GuardVerdict::Allow => return CacheDecision::Hit(c),
                    GuardVerdict::Reject(reason) => {
                        refused = Some(Refusal {
                            similarity: c.similarity,
                            reason,
                        })
                    }
                }
            }
        }
    }
    CacheDecision::Miss {
        prompt: query.prompt,
        embedding,
        refused,
    }
}

/// Shared by the decision's tests and the decider's.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::cache::{CachedResponse, SemanticEntry, SemanticIndexConfig, VectorIndex};
    use crate::embed::EMBED_DIM;

    pub(crate) const SCOPE: ScopeHash = ScopeHash([1; 16]);
    pub(crate) const OTHER_SCOPE: ScopeHash = ScopeHash([2; 16]);
    pub(crate) const STORED: &str = "What is the capital of Canada?";
    pub(crate) const PARAPHRASE: &str = "Which city is the capital of Canada?";
    pub(crate) const LOOKALIKE: &str = "What is the capital of Australia?";

    /// The unit vector along `axis`.
    pub(crate) fn axis(axis: usize) -> Vec<f32> {
        let mut v = vec![0.0; EMBED_DIM];
        if let Some(x) = v.get_mut(axis) {
            *x = 1.0;
        }
        v
    }

    /// An index holding [`STORED`] at [`axis`]`(0)` in [`SCOPE`], answering `body`.
    pub(crate) fn index_with_stored(body: &'static [u8]) -> Arc<SemanticIndex> {
        let index = Arc::new(SemanticIndex::new(SemanticIndexConfig::default()));
        let entry = Arc::new(SemanticEntry {
            prompt: STORED.into(),
            truncated: false,
            response: Arc::new(CachedResponse {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from_static(body),
            }),
        });
        index
            .insert(
                SCOPE,
                &axis(0),
                entry,
                Duration::from_secs(60),
                Instant::now(),
            )
            .unwrap();
        index
    }

    pub(crate) fn query(scope: ScopeHash, prompt: &str) -> SemanticQuery {
        SemanticQuery {
            scope,
            prompt: prompt.into(),
            threshold: 0.8,
            search: true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn embedding(vector: Vec<f32>) -> Embedding {
        Embedding {
            vector,
            tokens: 9,
            truncated: false,
        }
    }

    fn run(q: SemanticQuery, vector: Vec<f32>) -> CacheDecision {
        decide(
            &index_with_stored(b"{}"),
            q,
            embedding(vector),
            Instant::now(),
        )
    }

    #[test]
    fn paraphrase_above_threshold_is_a_hit() {
        let CacheDecision::Hit(c) = run(query(SCOPE, PARAPHRASE), axis(0)) else {
            panic!("not a hit");
        };
        assert!((c.similarity - 1.0).abs() < 1e-6);
        assert_eq!(c.entry.prompt, STORED);
    }

    #[test]
    fn lookalike_above_threshold_is_refused_by_the_guard() {
        match run(query(SCOPE, LOOKALIKE), axis(0)) {
            CacheDecision::Miss {
                prompt,
                embedding,
                refused: Some(r),
            } => {
                assert_eq!(prompt, LOOKALIKE);
                assert_eq!(embedding.vector, axis(0));
                assert!((r.similarity - 1.0).abs() < 1e-6);
                let note = r.to_string();
                assert!(note.starts_with("semantic candidate 1.0000 refused by the guard: "));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn below_threshold_other_scope_and_no_search_are_plain_misses() {
        for (q, v) in [
            (query(SCOPE, PARAPHRASE), axis(1)),
            (query(OTHER_SCOPE, PARAPHRASE), axis(0)),
            (
                SemanticQuery {
                    search: false,
                    ..query(SCOPE, PARAPHRASE)
                },
                axis(0),
            ),
        ] {
            match run(q, v.clone()) {
                CacheDecision::Miss {
                    prompt,
                    embedding,
                    refused: None,
                } => {
                    assert_eq!(prompt, PARAPHRASE);
                    assert_eq!(embedding.vector, v);
                }
                d => panic!("{d:?}"),
            }
        }
    }
}
