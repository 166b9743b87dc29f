//! `infergate embed`: embeds JSON lines from stdin with the same code the gateway uses, so the
//! port can be checked against the reference files (or anything else) from a shell.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    open_backend, BackendKind, EmbedBackend, EmbedError, ModelDir, TextTokenizer, TokenBatch,
    DEFAULT_MODEL_DIR, EMBED_DIM,
};

/// Arguments of `infergate embed`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedCliArgs {
    /// Directory with model.safetensors and tokenizer.json (scripts/fetch-model.sh).
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    pub model_dir: PathBuf,
    /// Device that runs the model.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// Lines embedded per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Threads a CPU GEMM may use.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(Deserialize)]
struct InputLine {
    text: String,
}

#[derive(Serialize)]
struct OutputLine<'a> {
    input_ids: &'a [u32],
    embedding: &'a [f32],
}

/// Reads `{"text": ...}` lines on stdin, writes `{"input_ids": [...], "embedding": [...]}`
/// lines on stdout in the same order.
pub fn run_embed_cli(args: EmbedCliArgs) -> Result<(), EmbedError> {
    let model = ModelDir::open(&args.model_dir)?;
    let tokenizer = TextTokenizer::from_file(&model.tokenizer())?;
    let mut backend = open_backend(args.backend, &model, args.threads)?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    embed_lines(&tokenizer, backend.as_mut(), args.batch, stdin, stdout)
}

/// The body of [`run_embed_cli`] over any reader and writer. Lines are split on `\n` only and
/// the text is not trimmed; empty lines are skipped.
pub fn embed_lines<R: BufRead, W: Write>(
    tokenizer: &TextTokenizer,
    backend: &mut dyn EmbedBackend,
    batch: usize,
    mut input: R,
    mut output: W,
) -> Result<(), EmbedError> {
    let batch = batch.max(1);
    let mut pending: Vec<Vec<u32>> = Vec::with_capacity(batch);
    let mut line = Vec::new();
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| EmbedError::Cli(format!("reading stdin: {e}")))?;
        if n > 0 {
            line_no += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if !line.is_empty() {
                let parsed: InputLine = serde_json::from_slice(&line)
                    .map_err(|e| EmbedError::Cli(format!("line {line_no}: {e}")))?;
                pending.push(tokenizer.encode(&parsed.text)?.ids);
            }
        }
        if pending.len() >= batch || (n == 0 && !pending.is_empty()) {
            flush(backend, &pending, &mut output)?;
            pending.clear();
        }
        if n == 0 {
            break;
        }
    }
    output
        .flush()
        .map_err(|e| EmbedError::Cli(format!("writing stdout: {e}")))
}

fn flush<W: Write>(
    backend: &mut dyn EmbedBackend,
    sequences: &[Vec<u32>],
    output: &mut W,
) -> Result<(), EmbedError> {
    let vectors = backend.embed(&TokenBatch::from_sequences(sequences))?;
    for (ids, embedding) in sequences.iter().zip(vectors.chunks_exact(EMBED_DIM)) {
        serde_json::to_writer(
            &mut *output,
            &OutputLine {
                input_ids: ids,
                embedding,
            },
        )
        .map_err(|e| EmbedError::Cli(format!("writing stdout: {e}")))?;
        output
            .write_all(b"\n")
            .map_err(|e| EmbedError::Cli(format!("writing stdout: {e}")))?;
    }
    Ok(())
}
