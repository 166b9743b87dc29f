//! `mockllm`: an OpenAI-compatible provider simulator for tests and load measurements.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use loadtest::mock::{Fault, MockConfig, MockServer, MockTls};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OpenAI-compatible provider simulator (chat completions, streaming, embeddings, models)
/// with latency, token pacing and fault injection. Per-request overrides: the headers
/// x-mock-ttft-ms, x-mock-itl-ms, x-mock-tokens, x-mock-body-bytes, x-mock-fault,
/// x-mock-ratelimit-remaining. HTTP/2 with prior knowledge (h2c) is served on the same
/// port; with --tls-cert and --tls-key, TLS with HTTP/2 only (ALPN h2).
#[derive(Debug, Parser)]
#[command(name = "mockllm", version, args_override_self = true)]
struct Args {
    /// Address to listen on (port 0 picks a free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Server threads, each with its own runtime and SO_REUSEPORT listener.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Do not pin threads to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Time to first token in milliseconds.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Delay between tokens in milliseconds.
    #[arg(long, default_value_t = 0)]
    itl_ms: u64,
    /// Tokens per completion.
    #[arg(long, default_value_t = 16)]
    tokens: u32,
    /// Pad non-streaming chat responses to about this many bytes.
    #[arg(long)]
    body_bytes: Option<usize>,
    /// Fault to inject: status:CODE, reset, reset-mid-stream, stall, stall-mid-stream.
    #[arg(long)]
    fault: Option<Fault>,
    /// Probability of injecting --fault (default 1 when --fault is given).
    #[arg(long)]
    fault_rate: Option<f64>,
    /// Comma-separated model ids for GET /v1/models.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gpt-4o-mini,gpt-4o,text-embedding-3-small"
    )]
    models: Vec<String>,
    /// Embedding dimensions when the request does not set `dimensions`.
    #[arg(long, default_value_t = 1536)]
    embedding_dimensions: usize,
    /// Serve TLS with this certificate chain (PEM; needs --tls-key): HTTP/2 only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mockllm: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let fault_rate = match (args.fault, args.fault_rate) {
        (_, Some(rate)) if !(0.0..=1.0).contains(&rate) => {
            return Err("--fault-rate must be between 0 and 1".into())
        }
        (Some(_), rate) => rate.unwrap_or(1.0),
        (None, _) => 0.0,
    };
    let config = MockConfig {
        ttft: std::time::Duration::from_millis(args.ttft_ms),
        itl: std::time::Duration::from_millis(args.itl_ms),
        tokens: args.tokens,
        body_bytes: args.body_bytes,
        fault: args.fault,
        fault_rate,
        models: args.models,
        embedding_dimensions: args.embedding_dimensions,
        aws_secret_access_key: std::env::var("MOCKLLM_AWS_SECRET_ACCESS_KEY").ok(),
        aws_access_key_id: std::env::var("MOCKLLM_AWS_ACCESS_KEY_ID").ok(),
    };
    // Block the signals before any thread starts, so only the waiting loop below sees them.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(MockTls { cert, key }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = MockServer::start_with_tls(
        args.listen,
        args.threads,
        !args.no_pin,
        config,
        tls.as_ref(),
    )?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "mockllm listening on {scheme}://{}",
        server.local_addr()
    )?;
    stdout.flush()?;
    drop(stdout);
    if signals.forever().next().is_some() {
        let snapshot = server.stats().snapshot();
        eprintln!(
            "mockllm: shutting down after {} requests",
            snapshot.requests.total
        );
    }
    Ok(())
}
