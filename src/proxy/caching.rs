//! The cache phase: before routing, an identical request (exact cache) or a paraphrase of
//! the last user message in the same conversation state (semantic cache, with the guard) is
//! answered from memory; after a complete successful answer, it is stored.
//!
//! Only chat completions are cached, only for aliases whose config turns it on, and only
//! complete 200 answers with a single text choice. Streamed answers are stored whole and
//! replayed as a well-formed stream.
//!
//! On the shard: the JSON parse, the keys, the exact lookup; the semantic decision (embedding,
//! index search, guard) is made on the embedder thread ([`SemanticDecider`]) and only awaited
//! here, at most `[embedder] lookup_timeout_ms`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cache::{
    CacheDecision, CacheScope, CachedResponse, ExactCache, ExactCacheConfig, FlightLeader, Lookup,
    ScopeHash, SemanticBypass, SemanticDecider, SemanticEntry, SemanticIndex, SemanticIndexConfig,
    SemanticKey, SemanticQuery, VectorIndex,
};
use crate::config::CacheConfig;
use crate::embed::{EmbedderHandle, Embedding};
use crate::http::RequestHead;
use crate::route::RouteCache;

/// The process-wide caches and the embedder, shared by every shard; they outlive reloads.
pub struct Caches {
    /// Exact cache with single-flight.
    pub exact: ExactCache,
    /// Semantic vectors by scope (shared with the embedder thread, which searches it).
    pub semantic: Arc<SemanticIndex>,
    /// The embedder thread, when a model is configured and loaded.
    pub embedder: Option<EmbedderHandle>,
    /// Semantic lookups, decided on the embedder thread (present with the embedder); its
    /// counters say how many were bypassed.
    pub decider: Option<SemanticDecider>,
}

impl Caches {
    /// Creates the caches sized by `[cache]`.
    pub fn new(cfg: &CacheConfig, embedder: Option<EmbedderHandle>) -> Self {
        let semantic = Arc::new(SemanticIndex::new(SemanticIndexConfig {
            max_entries_per_scope: cfg.semantic_max_entries_per_scope,
            max_scopes: cfg.semantic_max_scopes,
            ..SemanticIndexConfig::default()
        }));
        let decider = embedder
            .clone()
            .map(|e| SemanticDecider::new(e, Arc::clone(&semantic)));
        Self {
            exact: ExactCache::new(ExactCacheConfig {
                max_bytes: cfg.exact_max_bytes,
                ..ExactCacheConfig::default()
            }),
            semantic,
            embedder,
            decider,
        }
    }
}

/// What the client asked of the cache (`x-infergate-cache`, `x-infergate-cache-ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Look up and store (the default).
    Use,
    /// Neither look up nor store.
    Skip,
    /// Don't look up; store the fresh answer.
    Refresh,
}

/// Reads the per-request cache headers.
pub fn directive(head: &RequestHead) -> (Directive, Option<Duration>) {
    let d = match head
        .headers
        .get("x-infergate-cache")
        .map(<[u8]>::trim_ascii)
    {
        Some(v) if v.eq_ignore_ascii_case(b"skip") || v.eq_ignore_ascii_case(b"no-cache") => {
            Directive::Skip
        }
        Some(v) if v.eq_ignore_ascii_case(b"refresh") => Directive::Refresh,
        _ => Directive::Use,
    };
    let ttl = head
        .headers
        .get_str("x-infergate-cache-ttl")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs);
    (d, ttl)
}

/// A cached answer to serve.
pub struct CacheHit {
    /// The stored response (a whole `chat.completion`).
    pub response: Arc<CachedResponse>,
    /// `hit` or `semantic`.
    pub kind: &'static str,
    /// Cosine similarity for semantic hits.
    pub similarity: Option<f32>,
}

/// What to store once the upstream answered, and what the record says about the lookup.
pub struct CacheFill {
    leader: Option<FlightLeader>,
    semantic: Option<(ScopeHash, String, Embedding)>,
    ttl: Duration,
    store: bool,
    /// `miss`, `skip` or `refresh`.
    pub status: &'static str,
    /// Why the nearest semantic candidate was refused, or why the semantic cache was bypassed
    /// (queue full, no decision by the deadline, embedder failure), if either happened.
    pub note: Option<String>,
}

impl CacheFill {
    /// Whether the response should be captured for storing.
    pub fn wants_response(&self) -> bool {
        self.store && (self.leader.is_some() || self.semantic.is_some())
    }

    /// Stores a complete successful answer (a `chat.completion` body).
    pub fn store(self, caches: &Caches, body: Bytes) {
        if !self.store {
            return;
        }
        let response = CachedResponse {
            status: 200,
            content_type: "application/json".to_string(),
            body,
        };
        let stored = match self.leader {
            Some(leader) => leader.complete(response, self.ttl),
            None => Arc::new(response),
        };
        if let Some((scope, prompt, emb)) = self.semantic {
            let entry = Arc::new(SemanticEntry {
                prompt,
                truncated: emb.truncated,
                response: stored,
            });
            if let Err(e) =
                caches
                    .semantic
                    .insert(scope, &emb.vector, entry, self.ttl, Instant::now())
            {
                tracing::warn!(error = %e, "semantic cache insert failed");
            }
        }
    }
}

/// Looks the request up. `Ok(hit)` is served from memory; `Err(fill)` goes upstream and
/// hands the answer to `fill.store`.
pub async fn lookup(
    caches: &Caches,
    policy: &RouteCache,
    tenant: &str,
    alias: &str,
    head: &RequestHead,
    body: &[u8],
) -> Result<CacheHit, CacheFill> {
    let (directive, ttl) = directive(head);
    let mut fill = CacheFill {
        leader: None,
        semantic: None,
        ttl: ttl.unwrap_or(policy.ttl),
        store: directive != Directive::Skip,
        status: match directive {
            Directive::Use => "miss",
            Directive::Skip => "skip",
            Directive::Refresh => "refresh",
        },
        note: None,
    };
    if directive == Directive::Skip {
        return Err(fill);
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(fill);
    };
    let look = directive == Directive::Use;
    if policy.exact {
        let scope = CacheScope::new(tenant, alias);
        if let Some(hit) = exact_lookup(caches, &scope, &request, look, &mut fill).await {
            return Ok(hit);
        }
    }
    if policy.semantic {
        let Some(decider) = &caches.decider else {
            return Err(fill);
        };
        let Some((scope, prompt)) = SemanticKey::from_openai_chat(tenant, alias, &request) else {
            return Err(fill);
        };
        let query = SemanticQuery {
            scope,
            prompt,
            threshold: policy.threshold,
            search: look,
        };
        if let Some(hit) = semantic_lookup(decider, query, &mut fill).await {
            return Ok(hit);
        }
    }
    Err(fill)
}

/// The exact cache: a stored answer, another request's identical call to wait for, or the
/// lead of this key (noted in `fill`). `look` is false for a refresh: only the lead is taken.
async fn exact_lookup(
    caches: &Caches,
    scope: &CacheScope,
    request: &serde_json::Value,
    look: bool,
    fill: &mut CacheFill,
) -> Option<CacheHit> {
    let key = scope.exact_key(request);
    let hit = |response| CacheHit {
        response,
        kind: "hit",
        similarity: None,
    };
    match caches.exact.lookup(&key, Instant::now()) {
        Lookup::Hit(response) if look => return Some(hit(response)),
        Lookup::Wait(waiter) if look => {
            if let Some(response) = waiter.await {
                return Some(hit(response));
            }
            // The leader gave up: go upstream without coordinating.
        }
        Lookup::Lead(leader) => fill.leader = Some(leader),
        Lookup::Hit(_) | Lookup::Wait(_) => {}
    }
    None
}

/// The semantic decision, made on the embedder thread and awaited with its deadline. A miss
/// keeps the embedding in `fill` for storing the answer; a bypass leaves a note.
async fn semantic_lookup(
    decider: &SemanticDecider,
    query: SemanticQuery,
    fill: &mut CacheFill,
) -> Option<CacheHit> {
    let scope = query.scope;
    match decider.decide(query).await {
        Ok(CacheDecision::Hit(c)) => {
            let response = Arc::clone(&c.entry.response);
            if let Some(leader) = fill.leader.take() {
                leader.complete((*response).clone(), fill.ttl);
            }
            Some(CacheHit {
                response,
                kind: "semantic",
                similarity: Some(c.similarity),
            })
        }
        Ok(CacheDecision::Miss {
            prompt,
            embedding,
            refused,
        }) => {
            fill.note = refused.map(|r| r.to_string());
            fill.semantic = Some((scope, prompt, embedding));
            None
        }
        Err(bypass) => {
            if matches!(bypass, SemanticBypass::Embed(_) | SemanticBypass::NoAnswer) {
                tracing::warn!(error = %bypass, "semantic cache bypassed");
            }
            fill.note = Some(bypass.to_string());
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::embed::fakes::{ByteTokenizer, FakeBackend};
    use crate::embed::{Embedder, EmbedderConfig, EMBED_DIM};
    use crate::http::HeadSpans;

    /// Every prompt embeds to the same unit vector: only the guard tells prompts apart.
    fn same_vector(_: &[u32]) -> Vec<f32> {
        let mut v = vec![0.0; EMBED_DIM];
        v[0] = 1.0;
        v
    }

    fn caches(config: EmbedderConfig, backend: &FakeBackend) -> Caches {
        caches_seen_by(config, &ByteTokenizer::default(), backend)
    }

    /// Caches whose embedder tokenizes with `tokenizer`, which records every prompt that
    /// reached the embedder thread.
    fn caches_seen_by(
        config: EmbedderConfig,
        tokenizer: &ByteTokenizer,
        backend: &FakeBackend,
    ) -> Caches {
        let embedder = Embedder::start_with(
            &config,
            Box::new(tokenizer.clone()),
            Box::new(backend.clone()),
        )
        .unwrap();
        Caches::new(&CacheConfig::default(), Some(embedder))
    }

    fn head() -> RequestHead {
        let raw = Bytes::from_static(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&raw).unwrap();
        let spans = HeadSpans::capture(&raw, &req);
        RequestHead::from_spans(raw.clone(), spans)
    }

    fn body(question: &str) -> Vec<u8> {
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": question}]})
            .to_string()
            .into_bytes()
    }

    const SEMANTIC_ONLY: RouteCache = RouteCache {
        exact: false,
        semantic: true,
        ttl: Duration::from_secs(60),
        threshold: 0.8,
    };

    const EXACT_AND_SEMANTIC: RouteCache = RouteCache {
        exact: true,
        ..SEMANTIC_ONLY
    };

    // Returns lookup()'s own result, whose shape other modules rely on.
    #[allow(clippy::result_large_err)]
    fn look_with(
        caches: &Caches,
        policy: &RouteCache,
        question: &str,
    ) -> Result<CacheHit, CacheFill> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(lookup(caches, policy, "t", "m", &head(), &body(question)))
    }

    // Returns lookup()'s own result, whose shape other modules rely on.
    #[allow(clippy::result_large_err)]
    fn look(caches: &Caches, question: &str) -> Result<CacheHit, CacheFill> {
        look_with(caches, &SEMANTIC_ONLY, question)
    }

    #[test]
    fn a_miss_is_stored_and_a_paraphrase_then_hits_while_a_lookalike_is_refused() {
        let caches = caches(EmbedderConfig::default(), &FakeBackend::new(same_vector));
        let Err(fill) = look(&caches, "What is the capital of Canada?") else {
            panic!("hit in an empty cache");
        };
        assert!(fill.wants_response() && fill.note.is_none());
        fill.store(&caches, Bytes::from_static(b"{\"answer\":\"Ottawa\"}"));

        let Ok(hit) = look(&caches, "Which city is the capital of Canada?") else {
            panic!("paraphrase missed");
        };
        assert_eq!((hit.kind, hit.similarity), ("semantic", Some(1.0)));
        assert_eq!(&hit.response.body[..], b"{\"answer\":\"Ottawa\"}");

        let Err(fill) = look(&caches, "What is the capital of Australia?") else {
            panic!("look-alike served");
        };
        let note = fill.note.clone().unwrap();
        assert!(note.contains("refused by the guard"), "{note}");
        assert!(
            fill.wants_response(),
            "a refused lookup still stores its answer"
        );
    }

    #[test]
    fn a_full_queue_bypasses_the_semantic_cache_and_the_record_says_so() {
        let backend = FakeBackend::new(same_vector);
        let caches = caches(
            EmbedderConfig {
                max_batch: 1,
                max_queue: 1,
                ..EmbedderConfig::default()
            },
            &backend,
        );
        let embedder = caches.embedder.clone().unwrap();
        let closed = backend.gate.lock().unwrap();
        let first = embedder.embed("first".into());
        backend.wait_entered(1);
        let queued = embedder.embed("queued".into());

        let Err(fill) = look(&caches, "What is the capital of Canada?") else {
            panic!("hit in an empty cache");
        };
        assert_eq!(
            fill.note.as_deref(),
            Some("semantic cache bypassed: embedder queue full")
        );
        assert_eq!(fill.status, "miss");
        assert!(!fill.wants_response(), "a bypassed lookup is not stored");
        assert_eq!(caches.decider.as_ref().unwrap().bypassed_full(), 1);
        drop(closed);
        futures_executor::block_on(first).unwrap();
        futures_executor::block_on(queued).unwrap();
    }

    #[test]
    fn no_decision_by_the_deadline_is_a_miss_that_goes_upstream_with_a_note() {
        let backend = FakeBackend::new(same_vector);
        let caches = caches(
            EmbedderConfig {
                max_batch: 1,
                lookup_timeout_ms: 30,
                ..EmbedderConfig::default()
            },
            &backend,
        );
        let embedder = caches.embedder.clone().unwrap();
        // The embedder thread is stuck in a forward pass: no decision can come.
        let closed = backend.gate.lock().unwrap();
        let first = embedder.embed("first".into());
        backend.wait_entered(1);

        let start = Instant::now();
        let Err(fill) = look(&caches, "What is the capital of Canada?") else {
            panic!("hit without a decision");
        };
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(25) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert_eq!(fill.status, "miss");
        assert_eq!(
            fill.note.as_deref(),
            Some("semantic cache bypassed: no decision within 30 ms")
        );
        assert!(!fill.wants_response(), "no embedding, nothing to store");
        let decider = caches.decider.as_ref().unwrap();
        assert_eq!((decider.bypassed_full(), decider.timed_out()), (0, 1));
        drop(closed);
        futures_executor::block_on(first).unwrap();
    }

    #[test]
    fn the_exact_cache_hits_on_the_shard_without_asking_the_embedder() {
        const QUESTION: &str = "What is the capital of Canada?";
        let tokenizer = ByteTokenizer::default();
        let backend = FakeBackend::new(same_vector);
        let caches = caches_seen_by(
            EmbedderConfig {
                max_batch: 1,
                max_queue: 1,
                lookup_timeout_ms: 10_000,
                ..EmbedderConfig::default()
            },
            &tokenizer,
            &backend,
        );
        let Err(fill) = look_with(&caches, &EXACT_AND_SEMANTIC, QUESTION) else {
            panic!("hit in an empty cache");
        };
        assert!(fill.wants_response());
        fill.store(&caches, Bytes::from_static(b"{\"answer\":\"Ottawa\"}"));

        // Stuck embedder and full queue: any semantic lookup would be bypassed now.
        let embedder = caches.embedder.clone().unwrap();
        let closed = backend.gate.lock().unwrap();
        let first = embedder.embed("first".into());
        // The first lookup made forward pass 1; "first" is pass 2.
        backend.wait_entered(2);
        let queued = embedder.embed("queued".into());

        let Ok(hit) = look_with(&caches, &EXACT_AND_SEMANTIC, QUESTION) else {
            panic!("the exact cache missed");
        };
        assert_eq!((hit.kind, hit.similarity), ("hit", None));
        assert_eq!(&hit.response.body[..], b"{\"answer\":\"Ottawa\"}");
        let decider = caches.decider.as_ref().unwrap();
        assert_eq!(
            (decider.bypassed_full(), decider.timed_out()),
            (0, 0),
            "the exact hit never queued anything"
        );
        drop(closed);
        futures_executor::block_on(first).unwrap();
        futures_executor::block_on(queued).unwrap();
        let seen = tokenizer.seen();
        assert_eq!(
            seen.iter().filter(|t| *t == QUESTION).count(),
            1,
            "only the first lookup reached the embedder: {seen:?}"
        );
    }
}
