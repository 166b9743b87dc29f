//! The shard's side of a semantic lookup: queue the prompt to the embedder thread together
//! with a job that makes the whole decision there (embed, search, guard: see
//! [`super::decision`]), then wait for the answer at most `[embedder] lookup_timeout_ms`.
//!
//! A shard never blocks or computes here: it pushes onto a bounded queue (refused at once when
//! full), arms a timer and awaits a oneshot. Every way of not getting a decision (queue full,
//! deadline, embedder failure) is a [`SemanticBypass`]: the request goes upstream without the
//! semantic cache, and its record says why. A requester that stops waiting (deadline, client
//! gone) drops its oneshot, and the embedder thread skips the job before tokenizing it.
//!
//! Bypasses under load (queue full, deadline) are counted, and the operator sees the running
//! totals in a `warn` log line, written at the first bypass and then at most every
//! [`REPORT_EVERY`] while bypasses go on, so an overloaded embedder shows up in the log
//! without one line per request.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use super::decision::{decide, CacheDecision, SemanticQuery};
use super::{ScopeHash, SemanticIndex};
use crate::embed::{EmbedError, EmbedJob, EmbedderHandle, Embedding};

/// Why a lookup went on without the semantic cache; its `Display` is the request record's
/// `cache_note`. Neither looked up nor stored: the answer is not stored semantically either.
#[derive(Debug, thiserror::Error)]
pub enum SemanticBypass {
    /// `[embedder] max_queue` prompts were already waiting.
    #[error("semantic cache bypassed: embedder queue full")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// No decision within `[embedder] lookup_timeout_ms`.
    #[error("semantic cache bypassed: no decision within {} ms", .0.as_millis())]
    Deadline(Duration),
    /// The embedder thread is gone, or dropped this lookup without answering (a panic in the
    /// decision is contained there and ends up here).
    #[error("semantic cache bypassed: the embedder thread gave no answer")]
    NoAnswer,
    /// The prompt could not be embedded (tokenizer or backend failure).
    #[error("semantic cache bypassed: {0}")]
    Embed(EmbedError),
}

impl From<EmbedError> for SemanticBypass {
    fn from(e: EmbedError) -> Self {
        match e {
            EmbedError::QueueFull(capacity) => Self::QueueFull { capacity },
            EmbedError::Stopped => Self::NoAnswer,
            e => Self::Embed(e),
        }
    }
}

/// Least time between two log lines reporting bypassed lookups.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Rate limit of the bypass log line, shared by every shard without a lock: `due` says yes
/// to one caller at the first bypass, then to one caller per [`REPORT_EVERY`].
#[derive(Debug)]
struct BypassReport {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last report, plus one; 0 until the first.
    last: AtomicU64,
}

impl BypassReport {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Whether a report is due at `now`; claims it when it is.
    fn due(&self, now: Instant) -> bool {
        let at = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let every = u64::try_from(REPORT_EVERY.as_millis()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && at.saturating_sub(last) < every {
            return false;
        }
        self.last
            .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// The semantic cache as the shards use it: the index (shared with the embedder thread, which
/// searches it), the queue to that thread, the deadline, and what was bypassed. One per
/// process, shared by every shard.
pub struct SemanticDecider {
    embedder: EmbedderHandle,
    index: Arc<SemanticIndex>,
    deadline: Duration,
    timed_out: AtomicU64,
    report: BypassReport,
}

impl std::fmt::Debug for SemanticDecider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticDecider")
            .field("deadline", &self.deadline)
            .field("capacity", &self.embedder.capacity())
            .field("bypassed_full", &self.bypassed_full())
            .field("timed_out", &self.timed_out())
            .finish()
    }
}

impl SemanticDecider {
    /// Decisions on `index`, made by the thread behind `embedder`, awaited at most
    /// `embedder.lookup_timeout()`.
    pub fn new(embedder: EmbedderHandle, index: Arc<SemanticIndex>) -> Self {
        Self {
            deadline: embedder.lookup_timeout(),
            embedder,
            index,
            timed_out: AtomicU64::new(0),
            report: BypassReport::new(),
        }
    }

    /// Queues `query` now (never blocking: a full queue is a bypass at once) and returns a
    /// future for the decision, which gives up at the deadline. Dropping the future tells the
    /// embedder thread to skip the prompt if it has not started on it.
    ///
    /// The future needs a monoio runtime with its timer enabled (every shard has one).
    pub fn decide(
        &self,
        query: SemanticQuery,
    ) -> impl Future<Output = Result<CacheDecision, SemanticBypass>> + '_ {
        let (reply, answer) = oneshot::channel();
        let job = DecisionJob {
            index: Arc::clone(&self.index),
            scope: query.scope,
            threshold: query.threshold,
            search: query.search,
            reply,
        };
        let sent = self.embedder.submit(query.prompt, Box::new(job));
        async move {
            if let Err(e) = sent {
                let bypass = SemanticBypass::from(e);
                if matches!(bypass, SemanticBypass::QueueFull { .. }) {
                    self.report_bypass();
                }
                return Err(bypass);
            }
            match monoio::time::timeout(self.deadline, answer).await {
                Ok(Ok(decision)) => decision.map_err(SemanticBypass::from),
                Ok(Err(oneshot::Canceled)) => Err(SemanticBypass::NoAnswer),
                Err(_elapsed) => {
                    self.timed_out.fetch_add(1, Ordering::Relaxed);
                    self.report_bypass();
                    Err(SemanticBypass::Deadline(self.deadline))
                }
            }
        }
    }

    /// Logs the bypass totals when a report is due (see [`REPORT_EVERY`]).
    fn report_bypass(&self) {
        if self.report.due(Instant::now()) {
            tracing::warn!(
                bypassed_queue_full = self.bypassed_full(),
                bypassed_deadline = self.timed_out(),
                max_queue = self.embedder.capacity(),
                lookup_timeout_ms = u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX),
                "semantic cache bypassed under load: lookups went upstream without it \
                 (totals since start; see [embedder] max_queue and lookup_timeout_ms)"
            );
        }
    }

    /// Lookups that bypassed the semantic cache because the embedder's queue was full.
    pub fn bypassed_full(&self) -> u64 {
        self.embedder.rejected_full()
    }

    /// Lookups that bypassed the semantic cache because no decision came by the deadline.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// How long a lookup waits for its decision.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

/// The continuation queued with the prompt: on the embedder thread, turns its embedding into
/// a [`CacheDecision`] and sends it back.
struct DecisionJob {
    index: Arc<SemanticIndex>,
    scope: ScopeHash,
    threshold: f32,
    search: bool,
    reply: oneshot::Sender<Result<CacheDecision, EmbedError>>,
}

impl EmbedJob for DecisionJob {
    fn wanted(&self) -> bool {
        !self.reply.is_canceled()
    }

    fn run(self: Box<Self>, prompt: String, result: Result<Embedding, EmbedError>) {
        // The requester may have given up during the forward pass: spare the search.
        if self.reply.is_canceled() {
            return;
        }
        let Self {
            index,
            scope,
            threshold,
            search,
            reply,
        } = *self;
        let query = SemanticQuery {
            scope,
            prompt,
            threshold,
            search,
        };
        let answer = result.map(|embedding| decide(&index, query, embedding, Instant::now()));
        let _ = reply.send(answer);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::decision::fixtures::*;
    use super::*;
    use crate::block_on_local as block_on;
    use crate::embed::fakes::{ByteTokenizer, FakeBackend};
    use crate::embed::{Embedder, EmbedderConfig};

    /// Prompts starting with `W` embed to the stored entry's vector, the rest to another axis.
    fn by_first_letter(ids: &[u32]) -> Vec<f32> {
        axis(usize::from(ids.get(1) != Some(&u32::from(b'W'))))
    }

    struct Fixture {
        decider: SemanticDecider,
        tokenizer: ByteTokenizer,
        backend: FakeBackend,
    }

    fn fixture(config: EmbedderConfig) -> Fixture {
        let tokenizer = ByteTokenizer::default();
        let backend = FakeBackend::new(by_first_letter);
        let embedder = Embedder::start_with(
            &config,
            Box::new(tokenizer.clone()),
            Box::new(backend.clone()),
        )
        .unwrap();
        Fixture {
            decider: SemanticDecider::new(embedder, index_with_stored(b"{\"stored\":1}")),
            tokenizer,
            backend,
        }
    }

    #[test]
    fn decisions_come_back_from_the_embedder_thread() {
        let f = fixture(EmbedderConfig {
            lookup_timeout_ms: 10_000,
            ..EmbedderConfig::default()
        });
        let d = &f.decider;
        block_on(async {
            match d.decide(query(SCOPE, PARAPHRASE)).await.unwrap() {
                CacheDecision::Hit(c) => {
                    assert!((c.similarity - 1.0).abs() < 1e-6);
                    assert_eq!(&c.entry.response.body[..], b"{\"stored\":1}");
                }
                other => panic!("{other:?}"),
            }
            match d.decide(query(SCOPE, LOOKALIKE)).await.unwrap() {
                CacheDecision::Miss {
                    prompt,
                    embedding,
                    refused: Some(r),
                } => {
                    assert_eq!(prompt, LOOKALIKE);
                    assert_eq!(embedding.vector, axis(0));
                    assert_eq!(embedding.tokens, LOOKALIKE.len() + 2);
                    assert!(r.to_string().contains("refused by the guard"), "{r}");
                }
                other => panic!("{other:?}"),
            }
            match d.decide(query(SCOPE, "How far is Ottawa?")).await.unwrap() {
                CacheDecision::Miss {
                    embedding,
                    refused: None,
                    ..
                } => assert_eq!(embedding.vector, axis(1)),
                other => panic!("{other:?}"),
            }
        });
        assert_eq!((d.bypassed_full(), d.timed_out()), (0, 0));
        assert_eq!(
            d.report.last.load(Ordering::Relaxed),
            0,
            "nothing to report"
        );
    }

    #[test]
    fn full_queue_bypasses_at_once_and_counts() {
        let f = fixture(EmbedderConfig {
            max_batch: 1,
            max_queue: 1,
            lookup_timeout_ms: 10_000,
            ..EmbedderConfig::default()
        });
        let closed = f.backend.gate.lock().unwrap();
        let first = f.decider.embedder.embed("first".into());
        f.backend.wait_entered(1);
        let queued = f.decider.embedder.embed("queued".into());
        let start = Instant::now();
        let got = block_on(f.decider.decide(query(SCOPE, PARAPHRASE)));
        assert!(
            matches!(got, Err(SemanticBypass::QueueFull { capacity: 1 })),
            "{got:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5), "did not wait");
        assert_eq!(
            got.unwrap_err().to_string(),
            "semantic cache bypassed: embedder queue full"
        );
        assert_eq!((f.decider.bypassed_full(), f.decider.timed_out()), (1, 0));
        assert_ne!(
            f.decider.report.last.load(Ordering::Relaxed),
            0,
            "the first bypass is logged"
        );
        drop(closed);
        futures_executor::block_on(first).unwrap();
        futures_executor::block_on(queued).unwrap();
        // The bypassed prompt never reached the thread.
        assert!(!f.tokenizer.seen().iter().any(|t| t == PARAPHRASE));
    }

    #[test]
    fn no_decision_by_the_deadline_bypasses_and_the_thread_skips_it() {
        let f = fixture(EmbedderConfig {
            max_batch: 1,
            lookup_timeout_ms: 30,
            ..EmbedderConfig::default()
        });
        let closed = f.backend.gate.lock().unwrap();
        let first = f.decider.embedder.embed("first".into());
        f.backend.wait_entered(1);
        let start = Instant::now();
        let got = block_on(f.decider.decide(query(SCOPE, PARAPHRASE)));
        let waited = start.elapsed();
        assert!(matches!(got, Err(SemanticBypass::Deadline(_))), "{got:?}");
        assert_eq!(
            got.unwrap_err().to_string(),
            "semantic cache bypassed: no decision within 30 ms"
        );
        assert!(
            waited >= Duration::from_millis(25) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert_eq!((f.decider.bypassed_full(), f.decider.timed_out()), (0, 1));
        assert_ne!(f.decider.report.last.load(Ordering::Relaxed), 0);
        drop(closed);
        futures_executor::block_on(first).unwrap();
        // Behind the timed-out lookup in the queue: once this is answered, that one was seen.
        futures_executor::block_on(f.decider.embedder.embed("after".into())).unwrap();
        assert_eq!(f.tokenizer.seen(), ["first", "after"]);
    }

    #[test]
    fn a_dropped_lookup_is_skipped_before_tokenizing() {
        let f = fixture(EmbedderConfig {
            max_batch: 1,
            lookup_timeout_ms: 10_000,
            ..EmbedderConfig::default()
        });
        let closed = f.backend.gate.lock().unwrap();
        let first = f.decider.embedder.embed("first".into());
        f.backend.wait_entered(1);
        // Queued at once; the client goes away before the thread gets to it.
        drop(f.decider.decide(query(SCOPE, PARAPHRASE)));
        drop(closed);
        futures_executor::block_on(first).unwrap();
        futures_executor::block_on(f.decider.embedder.embed("after".into())).unwrap();
        assert_eq!(f.tokenizer.seen(), ["first", "after"]);
        assert_eq!(f.backend.batches.lock().unwrap().len(), 2);
        assert_eq!((f.decider.bypassed_full(), f.decider.timed_out()), (0, 0));
    }

    #[test]
    fn bypasses_are_reported_at_first_then_at_most_every_interval() {
        let report = BypassReport::new();
        let t0 = report.epoch;
        assert!(report.due(t0), "the first bypass is reported at once");
        assert!(!report.due(t0), "only once");
        assert!(!report.due(t0 + REPORT_EVERY - Duration::from_millis(1)));
        assert!(report.due(t0 + REPORT_EVERY));
        assert!(!report.due(t0 + REPORT_EVERY + Duration::from_secs(1)));
        assert!(report.due(t0 + REPORT_EVERY * 3));
        // A clock read before the epoch (another shard's `now`) counts as the epoch.
        let late = BypassReport::new();
        assert!(late.due(t0));
    }
}
