//! The cache phase: before routing, an identical request (exact cache) or a paraphrase of
//! the last user message in the same conversation state (semantic cache, with the guard) is
//! answered from memory; after a complete successful answer, it is stored.
//!
//! Only chat completions are cached, only for aliases whose config turns it on, and only
//! complete 200 answers with a single text choice. Streamed answers are stored whole and
//! replayed as a well-formed stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cache::{
    guard_allows, CacheScope, CachedResponse, ExactCache, ExactCacheConfig, FlightLeader, Lookup,
    ScopeHash, SemanticEntry, SemanticIndex, SemanticIndexConfig, SemanticKey, VectorIndex,
};
use crate::config::CacheConfig;
use crate::embed::{EmbedderHandle, Embedding};
use crate::http::RequestHead;
use crate::route::RouteCache;

/// The process-wide caches and the embedder, shared by every shard; they outlive reloads.
pub struct Caches {
    /// Exact cache with single-flight.
    pub exact: ExactCache,
    /// Semantic vectors by scope.
    pub semantic: SemanticIndex,
    /// The embedder thread, when a model is configured and loaded.
    pub embedder: Option<EmbedderHandle>,
}

impl Caches {
    /// Creates the caches sized by `[cache]`.
    pub fn new(cfg: &CacheConfig, embedder: Option<EmbedderHandle>) -> Self {
        Self {
            exact: ExactCache::new(ExactCacheConfig {
                max_bytes: cfg.exact_max_bytes,
                ..ExactCacheConfig::default()
            }),
            semantic: SemanticIndex::new(SemanticIndexConfig {
                max_entries_per_scope: cfg.semantic_max_entries_per_scope,
                max_scopes: cfg.semantic_max_scopes,
                ..SemanticIndexConfig::default()
            }),
            embedder,
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
    /// Why the nearest semantic candidate was refused, if one was.
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
        let key = CacheScope::new(tenant, alias).exact_key(&request);
        if look {
            match caches.exact.lookup(&key, Instant::now()) {
                Lookup::Hit(response) => {
                    return Ok(CacheHit {
                        response,
                        kind: "hit",
                        similarity: None,
                    })
                }
                Lookup::Wait(waiter) => {
                    if let Some(response) = waiter.await {
                        return Ok(CacheHit {
                            response,
                            kind: "hit",
                            similarity: None,
                        });
                    }
                    // The leader gave up: go upstream without coordinating.
                }
                Lookup::Lead(leader) => fill.leader = Some(leader),
            }
        } else if let Lookup::Lead(leader) = caches.exact.lookup(&key, Instant::now()) {
            fill.leader = Some(leader);
        }
    }
    if policy.semantic {
        let Some(embedder) = &caches.embedder else {
            return Err(fill);
        };
        let Some((scope, text)) = SemanticKey::from_openai_chat(tenant, alias, &request) else {
            return Err(fill);
        };
        let emb = match embedder.embed(text.clone()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "embedding failed; semantic cache bypassed");
                return Err(fill);
            }
        };
        if look {
            if let Some(c) = caches.semantic.nearest(&scope, &emb.vector, Instant::now()) {
                if c.similarity >= policy.threshold {
                    let verdict =
                        guard_allows(&text, &c.entry.prompt, emb.truncated, c.entry.truncated);
                    if verdict.allowed() {
                        let response = Arc::clone(&c.entry.response);
                        if let Some(leader) = fill.leader.take() {
                            leader.complete((*response).clone(), fill.ttl);
                        }
                        return Ok(CacheHit {
                            response,
                            kind: "semantic",
                            similarity: Some(c.similarity),
                        });
                    }
                    if let crate::cache::GuardVerdict::Reject(reason) = verdict {
                        fill.note = Some(format!(
                            "semantic candidate {:.4} refused by the guard: {reason}",
                            c.similarity
                        ));
                    }
                }
            }
        }
        fill.semantic = Some((scope, text, emb));
    }
    Err(fill)
}
