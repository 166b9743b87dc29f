//! The embedder thread: owns the backend, gathers the prompts that shards send into batches,
//! and answers each caller through a oneshot future.
//!
//! Shards run on monoio and must never block: sending is a non-blocking push on an unbounded
//! std channel and the answer is a `futures-channel` oneshot, which wakes the awaiting task
//! from another thread whatever runtime polls it.

use std::future::Future;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use super::{
    open_backend_for, EmbedBackend, EmbedError, EmbedderConfig, ModelDir, TextTokenizer,
    TokenBatch, Tokens, EMBED_DIM,
};

/// One prompt's embedding and what the cache needs to know about its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// L2-normalized, [`EMBED_DIM`] values.
    pub vector: Vec<f32>,
    /// Tokens the model saw, `[CLS]`/`[SEP]` included (at most 256).
    pub tokens: usize,
    /// The prompt was longer than 256 tokens and cut: prompts that differ only after the cut
    /// get the same vector, so the semantic cache must not serve them on the vector alone.
    pub truncated: bool,
}

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
    text: String,
    reply: oneshot::Sender<Result<Embedding, EmbedError>>,
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
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            rx,
            tokenizer,
            backend,
            max_batch: config.max_batch.max(1),
            max_wait: Duration::from_micros(config.max_wait_us),
        };
        std::thread::Builder::new()
            .name("infergate-embed".into())
            .spawn(move || worker.run())
            .map_err(EmbedError::Spawn)?;
        Ok(EmbedderHandle { tx })
    }
}

/// How shards reach the embedder thread; cheap to clone, one per shard. The thread stops when
/// the last handle is dropped.
#[derive(Clone)]
pub struct EmbedderHandle {
    tx: Sender<Request>,
}

impl EmbedderHandle {
    /// Queues `text` and returns a future for its embedding. Never blocks; dropping the future
    /// tells the thread to skip the prompt if it has not run yet.
    pub fn embed(
        &self,
        text: String,
    ) -> impl Future<Output = Result<Embedding, EmbedError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send(Request { text, reply });
        async move {
            sent.map_err(|_| EmbedError::Stopped)?;
            answer.await.map_err(|_| EmbedError::Stopped)?
        }
    }
}

struct Worker {
    rx: Receiver<Request>,
    tokenizer: Box<dyn Tokenize>,
    backend: Box<dyn EmbedBackend>,
    max_batch: usize,
    max_wait: Duration,
}

impl Worker {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
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
        for req in requests {
            if req.reply.is_canceled() {
                continue;
            }
            match self.tokenizer.tokenize(&req.text) {
                Ok(tokens) => {
                    sequences.push(tokens.ids);
                    waiting.push((req.reply, tokens.truncated));
                }
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                }
            }
        }
        if waiting.is_empty() {
            return;
        }
        let batch = TokenBatch::from_sequences(&sequences);
        match self.backend.embed(&batch) {
            Ok(vectors) if vectors.len() == waiting.len() * EMBED_DIM => {
                for (((reply, truncated), ids), vector) in waiting
                    .into_iter()
                    .zip(&sequences)
                    .zip(vectors.chunks_exact(EMBED_DIM))
                {
                    let _ = reply.send(Ok(Embedding {
                        vector: vector.to_vec(),
                        tokens: ids.len(),
                        truncated,
                    }));
                }
            }
            result => {
                let message = match result {
                    Ok(v) => format!("{} returned {} values", self.backend.name(), v.len()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(backend = self.backend.name(), %message, "embedding batch failed");
                for (reply, _) in waiting {
                    let _ = reply.send(Err(EmbedError::Backend(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// One token per byte, between `[CLS]` and `[SEP]`.
    struct ByteTokenizer;

    impl Tokenize for ByteTokenizer {
        fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
            let mut ids = vec![101];
            ids.extend(text.bytes().map(u32::from));
            ids.push(102);
            Ok(Tokens {
                ids,
                truncated: false,
            })
        }
    }

    /// Records batch shapes; the "embedding" of a row is its masked token ids, zero-padded.
    struct EchoBackend {
        batches: Arc<Mutex<Vec<(usize, usize)>>>,
        /// Held by a test to keep the thread inside `embed` while it arranges the queue.
        gate: Arc<Mutex<()>>,
    }

    impl EmbedBackend for EchoBackend {
        fn name(&self) -> &'static str {
            "echo"
        }

        fn embed(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
            let _gate = self.gate.lock().unwrap();
            self.batches
                .lock()
                .unwrap()
                .push((batch.batch, batch.seq_len));
            let mut out = vec![0.0; batch.batch * EMBED_DIM];
            for row in 0..batch.batch {
                let mut col = 0;
                for i in 0..batch.seq_len {
                    let at = row * batch.seq_len + i;
                    if batch.attention_mask[at] == 1 {
                        out[row * EMBED_DIM + col] = batch.input_ids[at] as f32;
                        col += 1;
                    }
                }
            }
            Ok(out)
        }
    }

    fn expected(text: &str) -> Vec<f32> {
        let mut v = vec![0.0; EMBED_DIM];
        let ids = ByteTokenizer.tokenize(text).unwrap().ids;
        for (o, id) in v.iter_mut().zip(ids) {
            *o = id as f32;
        }
        v
    }

    #[test]
    fn concurrent_callers_are_batched_and_get_their_own_vectors() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let config = EmbedderConfig {
            max_batch: 8,
            max_wait_us: 200_000,
            ..EmbedderConfig::default()
        };
        let backend = EchoBackend {
            batches: batches.clone(),
            gate: Arc::default(),
        };
        let handle =
            Embedder::start_with(&config, Box::new(ByteTokenizer), Box::new(backend)).unwrap();

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
        let batches = batches.lock().unwrap();
        // 8 callers, max_batch 8, a 200 ms window: they share one forward pass.
        assert_eq!(batches.len(), 1, "{batches:?}");
        assert_eq!(batches[0], (8, 2 + 8));
    }

    #[test]
    fn batch_is_cut_at_max_batch_and_cancelled_callers_are_skipped() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let config = EmbedderConfig {
            max_batch: 3,
            max_wait_us: 50_000,
            ..EmbedderConfig::default()
        };
        let gate = Arc::new(Mutex::new(()));
        let backend = EchoBackend {
            batches: batches.clone(),
            gate: gate.clone(),
        };
        let handle =
            Embedder::start_with(&config, Box::new(ByteTokenizer), Box::new(backend)).unwrap();
        // Queue 7 prompts while the thread is stuck in its first batch, and drop one future
        // before the thread gets to it.
        let closed = gate.lock().unwrap();
        let mut futures: Vec<_> = (0..7)
            .map(|i| Some(handle.embed(format!("p{i}"))))
            .collect();
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
        let sizes: Vec<usize> = batches.lock().unwrap().iter().map(|b| b.0).collect();
        assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 6, "{sizes:?}");
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
            Box::new(ByteTokenizer),
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
