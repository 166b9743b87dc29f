//! What the embedder thread does with a prompt's embedding once it has it.
//!
//! A prompt is queued together with an [`EmbedJob`]; the thread tokenizes and embeds the
//! prompt, then hands the embedding to the job, still on the embedder thread. That is how the
//! semantic cache runs its whole decision (index search and guard) off the shards while this
//! module stays independent of the cache: the cache builds the job, the embedder only runs it.
//! [`EmbedderHandle::embed`](super::EmbedderHandle::embed) is the plainest job: it sends the
//! embedding back through a oneshot.

use futures_channel::oneshot;

use super::EmbedError;

/// One prompt's embedding and what the cache needs to know about its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// L2-normalized, [`EMBED_DIM`](super::EMBED_DIM) values.
    pub vector: Vec<f32>,
    /// Tokens the model saw, `[CLS]`/`[SEP]` included (at most 256).
    pub tokens: usize,
    /// The prompt was longer than 256 tokens and cut: prompts that differ only after the cut
    /// get the same vector, so the semantic cache must not serve them on the vector alone.
    pub truncated: bool,
}

/// The continuation queued with a prompt: runs on the embedder thread with the prompt's
/// embedding, so work that needs the vector is done there rather than by whoever asked.
///
/// A job must not block: every prompt queued behind it waits for it.
pub trait EmbedJob: Send {
    /// Whether anyone still wants the result. Asked before the prompt is tokenized: a job
    /// whose requester gave up (deadline passed, connection gone) is dropped unrun, so it
    /// costs neither a tokenization nor a row in the forward pass.
    fn wanted(&self) -> bool;

    /// Consumes the embedding of `prompt` (or the reason there is none). `prompt` is handed
    /// back so a job that needs the text (the guard compares texts) does not queue a copy.
    /// A panic here is contained: it costs this job's answer, not the embedder thread.
    fn run(self: Box<Self>, prompt: String, result: Result<Embedding, EmbedError>);
}

/// The job behind [`EmbedderHandle::embed`](super::EmbedderHandle::embed): the embedding
/// itself, sent back through a oneshot. Dropping the receiving future cancels it.
pub(crate) struct ReplyJob(pub(crate) oneshot::Sender<Result<Embedding, EmbedError>>);

impl EmbedJob for ReplyJob {
    fn wanted(&self) -> bool {
        !self.0.is_canceled()
    }

    fn run(self: Box<Self>, _prompt: String, result: Result<Embedding, EmbedError>) {
        // The receiver may have gone since `wanted`: nobody is left to tell.
        let _ = self.0.send(result);
    }
}
