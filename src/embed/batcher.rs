//! The embedder thread: owns the backend, gathers the prompts that shards send into batches,
//! and hands each prompt's embedding to the [`EmbedJob`] queued with it.
//!
//! Shards run on monoio and must never block: sending is a non-blocking `try_send` on a
//! bounded std channel, refused at once when `[embedder] max_queue` prompts are already
//! waiting (and counted: [`EmbedderHandle::rejected_full`]), so an overloaded embedder sheds
//! work instead of growing a queue whose answers would come too late. Answers go back through
//! `futures-channel` oneshots, which wake the awaiting task from another thread whatever
//! runtime polls it.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

pub use super::job::Embedding;
use super::job::{EmbedJob, ReplyJob};
use super::{
    open_backend_for, EmbedBackend, EmbedError, EmbedderConfig, ModelDir, TextTokenizer,
    TokenBatch, Tokens, EMBED_DIM,
};

/// Turns text into model token ids; the real one is [`TextTokenizer`], tests use a fake.
pub trait Tokenize: Send {
    /// Tokenizes one prompt.
    fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError>;
}

impl Tokenize for TextTokenizer {
    fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        self.encode(text)
    }
}

struct Request {
    prompt: String,
    job: Box<dyn EmbedJob>,
}

/// Starts the embedder thread.
pub struct Embedder;

impl Embedder {
    /// Loads the tokenizer from `config.model_dir` and starts the thread that owns `backend`.
    pub fn start(
        config: EmbedderConfig,
        backend: Box<dyn EmbedBackend>,
    ) -> Result<EmbedderHandle, EmbedError> {
        let model = ModelDir::open(&config.model_dir)?;
        let tokenizer = TextTokenizer::from_file(&model.tokenizer())?;
        Self::start_with(&config, Box::new(tokenizer), backend)
    }

    /// Opens the backend `config` asks for (CUDA when available for `auto`, at its
    /// `precision`), then [`Embedder::start`]s. Returns the handle and one line saying which
    /// backend runs and why, for the start-up log.
    pub fn start_from_config(
        config: EmbedderConfig,
    ) -> Result<(EmbedderHandle, String), EmbedError> {
        let model = ModelDir::open(&config.model_dir)?;
        let opened = open_backend_for(&config, &model)?;
        let handle = Self::start(config, opened.backend)?;
        Ok((handle, opened.reason))
    }

    /// Starts the thread with a given tokenizer (tests, or a caller that already has one).
    pub fn start_with(
        config: &EmbedderConfig,
        tokenizer: Box<dyn Tokenize>,
        backend: Box<dyn EmbedBackend>,
    ) -> Result<EmbedderHandle, EmbedError> {
        let capacity = config.max_queue.max(1);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let stats = Arc::new(EmbedderStats::default());
        let worker = Worker {
            rx,
            stats: Arc::clone(&stats),
            tokenizer,
            backend,
            max_batch: config.max_batch.max(1),
            max_wait: Duration::from_micros(config.max_wait_us),
        };
        std::thread::Builder::new()
            .name("infergate-embed".into())
            .spawn(move || worker.run())
            .map_err(EmbedError::Spawn)?;
        Ok(EmbedderHandle {
            tx,
            capacity,
            lookup_timeout: Duration::from_millis(config.lookup_timeout_ms.max(1)),
            stats,
        })
    }
}

/// How shards reach the embedder thread; cheap to clone, one per shard. The thread stops when
/// the last handle is dropped.
#[derive(Clone)]
pub struct EmbedderHandle {
    tx: SyncSender<Request>,
    capacity: usize,
    lookup_timeout: Duration,
    stats: Arc<EmbedderStats>,
}

impl EmbedderHandle {
    /// Queues `prompt` with the job that will consume its embedding on the embedder thread.
    /// Never blocks: when `max_queue` prompts are already waiting the prompt is refused with
    /// [`EmbedError::QueueFull`] (and counted), so the caller goes on without it at once
    /// instead of waiting behind work that would answer too late.
    pub fn submit(&self, prompt: String, job: Box<dyn EmbedJob>) -> Result<(), EmbedError> {
        // Counted before the send, so the worker can never take it off first.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Request { prompt, job }) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => {
                        self.stats.rejected_full.fetch_add(1, Ordering::Relaxed);
                        Err(EmbedError::QueueFull(self.capacity))
                    }
                    TrySendError::Disconnected(_) => Err(EmbedError::Stopped),
                }
            }
        }
    }

    /// The queue's and batches' counters, for metrics; they outlive the thread.
    pub fn stats(&self) -> Arc<EmbedderStats> {
        Arc::clone(&self.stats)
    }

    /// Queues `text` and returns a future for its embedding. Never blocks; dropping the future
    /// tells the thread to skip the prompt if it has not run yet. For callers that want the
    /// vector itself (tests, tools); the gateway's semantic cache queues its own job with
    /// [`Self::submit`] so its decision is made on the embedder thread too.
    pub fn embed(
        &self,
        text: String,
    ) -> impl Future<Output = Result<Embedding, EmbedError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.submit(text, Box::new(ReplyJob(reply)));
        async move {
            sent?;
            answer.await.map_err(|_| EmbedError::Stopped)?
        }
    }

    /// How many prompts were refused because the queue was full, since the start (each one a
    /// semantic-cache lookup that went upstream without the cache).
    pub fn rejected_full(&self) -> u64 {
        self.stats.rejected_full()
    }

    /// Most prompts waiting in the queue (`[embedder] max_queue`; the batch in progress is
    /// not counted).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long a caller should wait for an answer before going on without it
    /// (`[embedder] lookup_timeout_ms`). The caller applies it, with its own runtime's timer.
    pub fn lookup_timeout(&self) -> Duration {
        self.lookup_timeout
    }
}

/// Upper bounds of the batch-size buckets (prompts per batch).
pub const BATCH_SIZE_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// What the embedder's queue and batches look like, for metrics: written by the shards
/// (queue depth, only when they queue a semantic lookup) and by the embedder thread (one
/// update per batch), read by the scraper.
#[derive(Debug, Default)]
pub struct EmbedderStats {
    queued: AtomicU64,
    rejected_full: AtomicU64,
    batches: [AtomicU64; BATCH_SIZE_BUCKETS.len() + 1],
    batch_prompts: AtomicU64,
}

impl EmbedderStats {
    /// Prompts waiting in the queue now (the batch being embedded is not counted).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Prompts refused because the queue was full, since the start.
    pub fn rejected_full(&self) -> u64 {
        self.rejected_full.load(Ordering::Relaxed)
    }

    /// Batches per size bucket ([`BATCH_SIZE_BUCKETS`], then one over the last bound), not
    /// cumulative.
    pub fn batches(&self) -> [u64; BATCH_SIZE_BUCKETS.len() + 1] {
        std::array::from_fn(|i| self.batches.get(i).map_or(0, |b| b.load(Ordering::Relaxed)))
    }

    /// Prompts in every batch so far.
    pub fn batch_prompts(&self) -> u64 {
        self.batch_prompts.load(Ordering::Relaxed)
    }

    fn taken(&self, prompts: usize) {
        let n = prompts as u64;
        self.queued.fetch_sub(n, Ordering::Relaxed);
        let bucket = BATCH_SIZE_BUCKETS.partition_point(|&b| b < n);
        if let Some(b) = self.batches.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.batch_prompts.fetch_add(n, Ordering::Relaxed);
    }
}

struct Worker {
    rx: Receiver<Request>,
    stats: Arc<EmbedderStats>,
    tokenizer: Box<dyn Tokenize>,
    backend: Box<dyn EmbedBackend>,
    max_batch: usize,
    max_wait: Duration,
}

impl Worker {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            self.stats.taken(batch.len());
            self.process(batch);
        }
    }

    /// Blocks for the first request, then takes what arrives until the batch is full or
    /// `max_wait` has passed since the first. `None` when every handle is gone.
    fn next_batch(&self) -> Option<Vec<Request>> {
        let first = self.rx.recv().ok()?;
        let deadline = Instant::now() + self.max_wait;
        let mut batch = vec![first];
        while batch.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(r) => {
                    batch.push(r);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(r) => batch.push(r),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        Some(batch)
    }

    fn process(&mut self, requests: Vec<Request>) {
        let mut waiting = Vec::with_capacity(requests.len());
        let mut sequences = Vec::with_capacity(requests.len());
        for Request { prompt, job } in requests {
            if !job.wanted() {
                continue;
            }
            match self.tokenizer.tokenize(&prompt) {
                Ok(tokens) => {
                    sequences.push(tokens.ids);
                    waiting.push((prompt, job, tokens.truncated));
                }
                Err(e) => run_job(job, prompt, Err(e)),
            }
        }
        if waiting.is_empty() {
            return;
        }
        let batch = TokenBatch::from_sequences(&sequences);
        match self.backend.embed(&batch) {
            Ok(vectors) if vectors.len() == waiting.len() * EMBED_DIM => {
                for (((prompt, job, truncated), ids), vector) in waiting
                    .into_iter()
                    .zip(&sequences)
                    .zip(vectors.chunks_exact(EMBED_DIM))
                {
                    let embedding = Embedding {
                        vector: vector.to_vec(),
                        tokens: ids.len(),
                        truncated,
                    };
                    run_job(job, prompt, Ok(embedding));
                }
            }
            result => {
                let message = match result {
                    Ok(v) => format!("{} returned {} values", self.backend.name(), v.len()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(backend = self.backend.name(), %message, "embedding batch failed");
                for (prompt, job, _) in waiting {
                    run_job(job, prompt, Err(EmbedError::Backend(message.clone())));
                }
            }
        }
    }
}

/// Runs one job, containing a panic: the job's answer is lost (its requester sees the
/// oneshot dropped) but the thread, and every prompt queued behind it, go on.
fn run_job(job: Box<dyn EmbedJob>, prompt: String, result: Result<Embedding, EmbedError>) {
    if catch_unwind(AssertUnwindSafe(move || job.run(prompt, result))).is_err() {
        tracing::error!("an embedder job panicked; its request goes on without it");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::fakes::{echo, ByteTokenizer, FakeBackend};
    use super::*;

    fn expected(text: &str) -> Vec<f32> {
        let mut v = echo(&ByteTokenizer::ids(text));
        v.resize(EMBED_DIM, 0.0);
        v
    }

    fn start(
        config: &EmbedderConfig,
        tokenizer: &ByteTokenizer,
        backend: &FakeBackend,
    ) -> EmbedderHandle {
        Embedder::start_with(
            config,
            Box::new(tokenizer.clone()),
            Box::new(backend.clone()),
        )
        .unwrap()
    }

    #[test]
    fn concurrent_callers_are_batched_and_get_their_own_vectors() {
        let config = EmbedderConfig {
            max_batch: 8,
            max_wait_us: 200_000,
            ..EmbedderConfig::default()
        };
        let backend = FakeBackend::new(echo);
        let handle = start(&config, &ByteTokenizer::default(), &backend);

        let texts: Vec<String> = (0..8).map(|i| "x".repeat(i) + &i.to_string()).collect();
        let threads: Vec<_> = texts
            .iter()
            .cloned()
            .map(|text| {
                let handle = handle.clone();
                std::thread::spawn(move || {
                    let got = futures_executor::block_on(handle.embed(text.clone())).unwrap();
                    (text, got)
                })
            })
            .collect();
        for t in threads {
            let (text, got) = t.join().unwrap();
            assert_eq!(got.vector, expected(&text), "{text}");
            assert_eq!(got.tokens, text.len() + 2);
            assert!(!got.truncated);
        }
        let batches = backend.batches.lock().unwrap();
        // 8 callers, max_batch 8, a 200 ms window: they share one forward pass.
        assert_eq!(batches.len(), 1, "{batches:?}");
        assert_eq!(batches[0], (8, 2 + 8));
    }

    #[test]
    fn batch_is_cut_at_max_batch_and_cancelled_callers_are_skipped() {
        let config = EmbedderConfig {
            max_batch: 3,
            max_wait_us: 50_000,
            ..EmbedderConfig::default()
        };
        let tokenizer = ByteTokenizer::default();
        let backend = FakeBackend::new(echo);
        let handle = start(&config, &tokenizer, &backend);
        // Queue 7 prompts while the thread is stuck in its first batch, and drop one future
        // before the thread gets to it.
        let closed = backend.gate.lock().unwrap();
        let mut futures: Vec<_> = (0..7)
            .map(|i| Some(handle.embed(format!("p{i}"))))
            .collect();
        backend.wait_entered(1);
        futures[5] = None;
        drop(closed);
        for (i, f) in futures.into_iter().enumerate() {
            if let Some(f) = f {
                assert_eq!(
                    futures_executor::block_on(f).unwrap().vector,
                    expected(&format!("p{i}"))
                );
            }
        }
        let sizes: Vec<usize> = backend
            .batches
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.0)
            .collect();
        assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 6, "{sizes:?}");
        // Skipped before tokenizing, not only left out of the forward pass.
        assert!(
            !tokenizer.seen().contains(&"p5".to_string()),
            "{:?}",
            tokenizer.seen()
        );
    }

    #[test]
    fn full_queue_refuses_at_once_and_counts() {
        let config = EmbedderConfig {
            max_batch: 1,
            max_queue: 2,
            ..EmbedderConfig::default()
        };
        let backend = FakeBackend::new(echo);
        let handle = start(&config, &ByteTokenizer::default(), &backend);
        assert_eq!(handle.capacity(), 2);
        let closed = backend.gate.lock().unwrap();
        // The first prompt is taken into a batch (held at the gate); two more fill the queue.
        let first = handle.embed("a".into());
        backend.wait_entered(1);
        let queued = [handle.embed("b".into()), handle.embed("c".into())];
        let refused = futures_executor::block_on(handle.embed("d".into())).unwrap_err();
        assert!(matches!(refused, EmbedError::QueueFull(2)), "{refused}");
        assert_eq!(handle.rejected_full(), 1);
        let stats = handle.stats();
        // Two wait; the refused one was never counted as queued.
        assert_eq!(stats.queued(), 2);
        drop(closed);
        assert_eq!(
            futures_executor::block_on(first).unwrap().vector,
            expected("a")
        );
        for (f, text) in queued.into_iter().zip(["b", "c"]) {
            assert_eq!(
                futures_executor::block_on(f).unwrap().vector,
                expected(text)
            );
        }
        // Room again once the thread has drained the queue.
        assert_eq!(
            futures_executor::block_on(handle.embed("e".into()))
                .unwrap()
                .vector,
            expected("e")
        );
        // Every prompt was taken, one per batch (max_batch 1): four batches of one.
        assert_eq!(stats.queued(), 0);
        assert_eq!(stats.batches()[0], 4);
        assert_eq!(stats.batch_prompts(), 4);
        assert_eq!(handle.rejected_full(), 1);
    }

    #[test]
    fn a_panicking_job_costs_its_answer_not_the_thread() {
        struct Panics;
        impl EmbedJob for Panics {
            fn wanted(&self) -> bool {
                true
            }
            fn run(self: Box<Self>, _: String, _: Result<Embedding, EmbedError>) {
                panic!("job bug");
            }
        }
        let config = EmbedderConfig {
            max_batch: 2,
            max_wait_us: 50_000,
            ..EmbedderConfig::default()
        };
        let backend = FakeBackend::new(echo);
        let handle = start(&config, &ByteTokenizer::default(), &backend);
        handle.submit("boom".into(), Box::new(Panics)).unwrap();
        // In the same batch as the panicking job, and after it.
        let after = futures_executor::block_on(handle.embed("fine".into())).unwrap();
        assert_eq!(after.vector, expected("fine"));
        let again = futures_executor::block_on(handle.embed("still".into())).unwrap();
        assert_eq!(again.vector, expected("still"));
    }

    #[test]
    fn stopped_thread_is_an_error_not_a_hang() {
        struct Failing;
        impl EmbedBackend for Failing {
            fn name(&self) -> &'static str {
                "failing"
            }
            fn embed(&mut self, _: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
                Err(EmbedError::InvalidBatch("boom".into()))
            }
        }
        let handle = Embedder::start_with(
            &EmbedderConfig::default(),
            Box::new(ByteTokenizer::default()),
            Box::new(Failing),
        )
        .unwrap();
        let err = futures_executor::block_on(handle.embed("a".into())).unwrap_err();
        assert!(
            matches!(err, EmbedError::Backend(ref m) if m.contains("boom")),
            "{err}"
        );
    }
}
