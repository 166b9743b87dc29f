//! Response caches: exact (request hash) and semantic (embedding similarity plus a guard).
//!
//! Both are process-wide, `Send + Sync`, and meant to be held in an `Arc` by every shard;
//! lookups never take a lock. How a request uses them:
//!
//! 1. **Exact**: `CacheScope::new(tenant, alias).exact_key(&request)` then
//!    [`ExactCache::lookup`]: `Hit` serves the stored response (re-rendered as a stream when the
//!    client asked for one), `Wait` awaits an identical request already upstream, `Lead` goes
//!    upstream and calls [`FlightLeader::complete`] with the final JSON (dropping the leader
//!    on failure releases the waiters).
//! 2. **Semantic** (when the route allows it): [`SemanticKey::from_openai_chat`] gives the
//!    scope hash and the last user text; [`SemanticDecider::decide`] queues the text to the
//!    embedder thread, which turns it into a unit vector (and says whether it truncated it),
//!    finds the nearest entry of the scope, checks the threshold and runs [`guard_allows`] on
//!    the two texts ([`decide`]), and answers a [`CacheDecision`]. The shard only waits, at
//!    most the deadline; a full queue or a late answer is a [`SemanticBypass`]. After an
//!    upstream answer, [`VectorIndex::insert`] stores it with the embedding of the decision.
//!
//! Modules: [`key`] (request hashing and scopes), [`exact`] (the exact cache and
//! single-flight), [`semantic`] (the vector index), [`guard`] (the lookalike guard),
//! [`decision`] (nearest, threshold, guard on one embedded prompt), [`decider`] (queueing that
//! decision to the embedder thread, with its deadline).

pub mod decider;
pub mod decision;
pub mod exact;
pub mod gpu_index;
pub mod guard;
pub mod key;
pub mod semantic;

pub use decider::{SemanticBypass, SemanticDecider};
pub use decision::{decide, CacheDecision, Refusal, SemanticQuery};
pub use exact::{CachedResponse, ExactCache, ExactCacheConfig, FlightLeader, FlightWaiter, Lookup};
pub use guard::{guard_allows, GuardReason, GuardVerdict, DEFAULT_THRESHOLD};
pub use key::{CacheScope, ExactKey, KeyError, RequestHash, ScopeHash, SemanticKey};
pub use semantic::{
    Candidate, IndexError, SemanticEntry, SemanticIndex, SemanticIndexConfig, VectorIndex,
};
