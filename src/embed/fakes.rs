//! Test doubles for the embedder thread (compiled for tests only): a tokenizer that records
//! what it was asked to tokenize, and a backend whose vectors are a function of the token ids,
//! with a gate a test holds to keep the thread inside a forward pass while it arranges the
//! queue. Shared by the batcher's tests and the semantic cache's decision tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{EmbedBackend, EmbedError, TokenBatch, Tokenize, Tokens, EMBED_DIM};

/// One token per byte, between `[CLS]` (101) and `[SEP]` (102); records every text it sees.
#[derive(Clone, Default)]
pub(crate) struct ByteTokenizer {
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
}

impl ByteTokenizer {
    /// The token ids of `text`.
    pub(crate) fn ids(text: &str) -> Vec<u32> {
        let mut ids = vec![101];
        ids.extend(text.bytes().map(u32::from));
        ids.push(102);
        ids
    }

    /// The texts tokenized so far, in order.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Tokenize for ByteTokenizer {
    fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        self.seen.lock().unwrap().push(text.to_string());
        Ok(Tokens {
            ids: Self::ids(text),
            truncated: false,
        })
    }
}

/// Records batch shapes; the vector of a row is `vector_of(its unpadded ids)`, zero-padded or
/// cut to [`EMBED_DIM`].
#[derive(Clone)]
pub(crate) struct FakeBackend {
    /// `(batch, seq_len)` of every forward pass.
    pub(crate) batches: Arc<Mutex<Vec<(usize, usize)>>>,
    /// Held by a test to keep the thread inside `embed`.
    pub(crate) gate: Arc<Mutex<()>>,
    /// Forward passes started (counted before the gate).
    pub(crate) entered: Arc<AtomicUsize>,
    vector_of: fn(&[u32]) -> Vec<f32>,
}

impl FakeBackend {
    /// A backend computing each row's vector with `vector_of`.
    pub(crate) fn new(vector_of: fn(&[u32]) -> Vec<f32>) -> Self {
        Self {
            batches: Arc::default(),
            gate: Arc::default(),
            entered: Arc::default(),
            vector_of,
        }
    }

    /// Waits until `n` forward passes have started (the thread is inside, or past, the gate).
    pub(crate) fn wait_entered(&self, n: usize) {
        for _ in 0..5_000 {
            if self.entered.load(Ordering::SeqCst) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the embedder thread never reached forward pass {n}");
    }
}

/// The row's token ids as values: distinct texts get distinct vectors.
pub(crate) fn echo(ids: &[u32]) -> Vec<f32> {
    ids.iter().map(|&id| id as f32).collect()
}

impl EmbedBackend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn embed(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let _gate = self.gate.lock().unwrap();
        self.batches
            .lock()
            .unwrap()
            .push((batch.batch, batch.seq_len));
        let mut out = Vec::with_capacity(batch.batch * EMBED_DIM);
        for row in 0..batch.batch {
            let span = row * batch.seq_len..(row + 1) * batch.seq_len;
            let ids: Vec<u32> = batch.input_ids[span.clone()]
                .iter()
                .zip(&batch.attention_mask[span])
                .filter(|(_, &m)| m == 1)
                .map(|(&id, _)| id)
                .collect();
            let mut v = (self.vector_of)(&ids);
            v.resize(EMBED_DIM, 0.0);
            out.extend(v);
        }
        Ok(out)
    }
}
