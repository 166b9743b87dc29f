//! The `infergate` binary: serve, check a config, hash a gateway key, check the machine,
//! upgrade a running one.
#![deny(clippy::indexing_slicing, clippy::string_slice)]
#![allow(clippy::print_stdout)] // stdout is the CLI's interface: the ready line, check-config, hash-key.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};

use infergate::admin::{
    bind_admin_listener, spawn_signal_thread, spawn_watch_thread, start_admin_server, AdminInfo,
    ConfigReloader,
};
use infergate::config::Config;
use infergate::observe::LogWriter;
use infergate::proxy::{Caches, Lifecycle};
use infergate::shard::{self, DriverChoice, ShardShared};
use infergate::upgrade::{Inherited, Launch, Pidfile, Role, Upgrader};
use infergate::upstream::tls_connector;

/// mimalloc, wrapped so that `INFERGATE_COUNT_ALLOCATIONS=1` can count each shard's
/// allocations for tests/allocations.rs (one relaxed load per allocation when off).
#[global_allocator]
static GLOBAL: shard::allocations::CountingAlloc<mimalloc::MiMalloc> =
    shard::allocations::CountingAlloc::new(mimalloc::MiMalloc);

/// An inference gateway for AI agent fleets.
#[derive(Parser)]
#[command(name = "infergate", version, about)]
struct Cli {
    /// Config file to serve (TOML).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Number of shards (default: the config's, else one per core).
    #[arg(long, global = true)]
    shards: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Validate a config file without serving; exits non-zero with the reason if invalid.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the SHA-256 of a gateway key, for `[auth] keys`.
    HashKey {
        /// The key clients will send.
        key: String,
    },
    /// Embed JSON lines `{"text": ...}` from stdin with the semantic cache's model.
    Embed(infergate::embed::EmbedCliArgs),
    /// Show requests from the request log files (rotated ones included), filtered.
    Logs(infergate::observe::logs::LogsArgs),
    /// Replace a running gateway with the binary now at its path, without dropping a
    /// connection (sends SIGUSR2 and waits for the handoff).
    Upgrade(infergate::upgrade::cli::UpgradeArgs),
    /// Check what an operator gets wrong (io_uring, limits, CPUs, model files, CUDA,
    /// providers, keys, clock) and say what to fix; exits non-zero if a check fails.
    Doctor,
}

fn main() -> std::process::ExitCode {
    // First, before anything can change the working directory: what an upgrade starts again.
    let launch = Launch::capture();
    let filter = tracing_subscriber::EnvFilter::try_from_env("INFERGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::HashKey { key }) => {
            println!("{}", infergate::policy::sha256_hex(&key));
            Ok(())
        }
        Some(Command::Embed(args)) => {
            infergate::embed::run_embed_cli(args).map_err(|e| e.to_string())
        }
        Some(Command::Logs(args)) => {
            infergate::observe::logs::run(&args).map_err(|e| e.to_string())
        }
        Some(Command::Upgrade(args)) => upgrade(&args, cli.config.as_deref()),
        Some(Command::Doctor) => infergate::doctor::run(cli.config.as_deref(), cli.shards),
        Some(Command::Serve) | None => serve(cli.config, cli.shards, launch),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infergate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> Result<(), String> {
    let cfg = Config::load(file).map_err(|e| e.to_string())?;
    let table = infergate::route::RouteTable::compile(&cfg).map_err(|e| e.to_string())?;
    for p in table.providers.values() {
        infergate::upstream::UpstreamLink::build(p).map_err(|e| e.to_string())?;
    }
    shard::ShardPlan::for_this_process(None, &cfg.server).map_err(|e| e.to_string())?;
    println!(
        "{}: ok ({} model(s), {} provider(s))",
        file.display(),
        table.models.len(),
        table.providers.len()
    );
    for p in table.providers.values() {
        if let Some(why) = &p.unavailable {
            println!("  note: provider {} will be skipped: {why}", p.name);
        }
    }
    Ok(())
}

/// `infergate upgrade`: the pidfile defaults to `[server] pidfile` of `--config`.
fn upgrade(
    args: &infergate::upgrade::cli::UpgradeArgs,
    config: Option<&std::path::Path>,
) -> Result<(), String> {
    let cfg = match config {
        Some(path) if args.pid.is_none() && args.pidfile.is_none() => {
            Some(Config::load(path).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let pidfile = cfg.as_ref().and_then(|c| c.server.pidfile.as_deref());
    infergate::upgrade::cli::run(args, pidfile).map_err(|e| e.to_string())
}

fn serve(
    config: Option<PathBuf>,
    shards_flag: Option<usize>,
    launch: Launch,
) -> Result<(), String> {
    let path = config.unwrap_or_else(|| PathBuf::from("config/quickstart.toml"));
    let cfg = Config::load(&path).map_err(|e| e.to_string())?;
    let plan =
        shard::ShardPlan::for_this_process(shards_flag, &cfg.server).map_err(|e| e.to_string())?;
    // Listening sockets handed over by the process this one replaces (or by systemd).
    let mut inherited = Inherited::from_env();
    let upgrader = Arc::new(Upgrader::new(
        launch,
        std::time::Duration::from_millis(cfg.server.upgrade_timeout_ms),
    ));
    let upstreams = Arc::new(infergate::upstream::UpstreamRegistry::new());
    let governor = Arc::new(infergate::policy::LocalGovernor::default());
    let store = Arc::new(infergate::admin::open_store(&cfg).map_err(|e| format!("[store]: {e}"))?);
    let table =
        ConfigReloader::compile(&cfg, &upstreams, &governor, &store).map_err(|e| e.to_string())?;
    infergate::admin::restore(&governor, &store).map_err(|e| format!("[store]: {e}"))?;
    if table.keys.is_open() {
        tracing::warn!("NO GATEWAY KEYS CONFIGURED: the gateway is OPEN to anyone who can reach {}. Add [auth] keys (see `infergate hash-key`).", cfg.server.listen);
    }
    for p in table.providers.values() {
        if let Some(why) = &p.unavailable {
            tracing::warn!(provider = %p.name, "provider skipped: {why}");
        }
    }
    let table = Arc::new(ArcSwap::from_pointee(table));
    let lifecycle = Arc::new(Lifecycle::new());
    lifecycle.set_drain_timeout(std::time::Duration::from_millis(
        cfg.server.drain_timeout_ms,
    ));
    let (log_writer, records) =
        LogWriter::start(&cfg.log).map_err(|e| format!("request log {}: {e}", cfg.log.path))?;
    let (trace_exporter, tracer) =
        infergate::observe::trace::TraceExporter::start(&cfg.otel).map_err(|e| e.to_string())?;
    let reloader = ConfigReloader::new(
        path.clone(),
        Arc::clone(&table),
        Arc::clone(&upstreams),
        Arc::clone(&governor),
        Arc::clone(&store),
    );
    let flusher = infergate::admin::spawn_flusher(
        Arc::clone(&governor),
        Arc::clone(&store),
        Arc::clone(&lifecycle),
    )
    .map_err(|e| e.to_string())?;
    spawn_signal_thread(
        Some(Arc::clone(&reloader)),
        Arc::clone(&lifecycle),
        Some(Arc::clone(&upgrader)),
    )
    .map_err(|e| e.to_string())?;
    let tls_server = match &cfg.server.tls {
        Some(files) => Some(Arc::new(
            infergate::http::tls::TlsTerminator::new(files)
                .map_err(|e| format!("[server] tls: {e}"))?,
        )),
        None => None,
    };
    spawn_watch_thread(
        Arc::clone(&reloader),
        Arc::clone(&lifecycle),
        tls_server.clone(),
    )
    .map_err(|e| e.to_string())?;

    let count = plan.count;
    let fd_connection_cap = connection_cap(count, cfg.server.max_connections_per_shard);
    if shard::allocations::enable_from_env(count) {
        tracing::warn!(
            "{}=1: counting allocations per shard (GET /admin/debug/allocations)",
            shard::allocations::ENV
        );
    }
    let failpoints = std::env::var("INFERGATE_FAILPOINTS").is_ok_and(|v| v == "1");
    if failpoints {
        tracing::warn!("INFERGATE_FAILPOINTS=1: fault injection is on (for tests only)");
    }
    let embedder = start_embedder(&cfg);
    let metrics = start_metrics(&cfg, count, &table, &records, embedder.as_ref())?;
    let caches = Arc::new(Caches::new(&cfg.cache, embedder));
    let shared = ShardShared {
        table: Arc::clone(&table),
        records: records.clone(),
        tracer: tracer.clone(),
        lifecycle: Arc::clone(&lifecycle),
        tls: tls_connector(),
        upstreams,
        governor: Arc::clone(&governor),
        caches: Some(caches),
        bodies: infergate::http::BodyBudget::new(cfg.server.max_inflight_body_bytes),
        fd_connection_cap,
        failpoints,
        metrics: metrics.clone(),
        tls_server: tls_server.clone(),
    };
    let clients = inherited.take_clients(&cfg.server.listen);
    let mut shards = shard::start(
        &plan,
        &cfg.server.listen,
        DriverChoice::from_env(),
        shared,
        clients,
    )
    .map_err(|e| e.to_string())?;
    for l in std::mem::take(&mut shards.handoff) {
        upgrader.keep(Role::Client, l);
    }
    let driver = shards.driver.as_str();
    tracing::info!(shards = count, driver, addr = %shards.local_addr, "serving");
    let scheme = if tls_server.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "infergate listening on {scheme}://{} ({count} shard(s), {driver} driver)",
        shards.local_addr
    );
    let probes = infergate::service::Probes::new(
        Arc::clone(&shards.heartbeats),
        Arc::clone(&lifecycle),
        std::time::Duration::from_millis(cfg.server.liveness_timeout_ms),
    );
    if let Some(admin) = &cfg.admin {
        let info = AdminInfo {
            table: Arc::clone(&table),
            reloader: Some(Arc::clone(&reloader)),
            lifecycle: Arc::clone(&lifecycle),
            shards: count,
            driver,
            governor: Arc::clone(&governor),
            metrics,
            records: log_writer.views(),
            probes: probes.clone(),
        };
        let admin_err = |e: std::io::Error| format!("admin listener {}: {e}", admin.listen);
        let listener = match inherited.take_admin(&admin.listen) {
            Some(l) => l,
            None => bind_admin_listener(admin).map_err(admin_err)?,
        };
        upgrader.keep(Role::Admin, listener.try_clone().map_err(admin_err)?);
        let addr = start_admin_server(admin, listener, info).map_err(admin_err)?;
        println!("admin listening on http://{addr}");
    }
    if let Some(alias) = cfg.models.keys().next() {
        println!(
            "try: curl -s http://{}/v1/chat/completions -H 'content-type: application/json' -d '{{\"model\":\"{alias}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'",
            shards.local_addr
        );
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let pidfile = match &cfg.server.pidfile {
        Some(p) => Some(Pidfile::write(p).map_err(|e| e.to_string())?),
        None => None,
    };
    // Every shard listens: the process this one replaces may stop accepting now.
    inherited.notify_ready();
    let status = format!(
        "serving on {} ({count} shard(s), {driver})",
        shards.local_addr
    );
    if let Err(e) = infergate::service::announce_ready(probes, &status) {
        tracing::warn!(error = %e, "could not notify the service manager (NOTIFY_SOCKET)");
    }
    if let Err(died) = shards.join() {
        // Part of the listening socket's connections would go unanswered: end loudly so the
        // supervisor restarts the process.
        tracing::error!(shard = died.id, how = died.how, "{died}; exiting");
        eprintln!("infergate: {died}; exiting");
        std::process::exit(70);
    }
    // Calls settled during the drain are in the final flush.
    let _ = flusher.join();
    if let Err(e) = infergate::admin::flush(&governor, &store) {
        tracing::error!(error = %e, "final budget spend could not be written to the store");
    }
    drop(records);
    drop(table);
    log_writer.join();
    drop(tracer);
    trace_exporter.join();
    if let Some(p) = &pidfile {
        p.remove_if_ours();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Raises the open-files limit and works out how many connections each shard may hold within
/// it: a client connection can need an upstream one too, and some descriptors stay for
/// listeners, logs and the embedder.
fn connection_cap(shards: usize, configured: usize) -> usize {
    let limit = match infergate::shard::raise_fd_limit() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-files limit");
            return configured;
        }
    };
    let cap = infergate::shard::connections_within(limit, shards);
    if cap < configured {
        tracing::warn!(
            open_files = limit,
            per_shard = cap,
            configured,
            "the open-files limit holds fewer connections than max_connections_per_shard; using the lower cap"
        );
    }
    cap
}

/// The process's metrics, unless `[metrics]` turns them off or no admin listener would
/// serve them.
fn start_metrics(
    cfg: &Config,
    shards: usize,
    table: &infergate::route::SharedRouteTable,
    records: &infergate::observe::RecordSink,
    embedder: Option<&infergate::embed::EmbedderHandle>,
) -> Result<Option<Arc<infergate::observe::metrics::Metrics>>, String> {
    if !cfg.metrics.is_on(cfg.admin.is_some()) {
        if cfg.metrics.enabled == Some(true) {
            tracing::warn!("[metrics] enabled, but there is no [admin] listener to serve /metrics; metrics are off");
        }
        return Ok(None);
    }
    let sources = infergate::observe::metrics::MetricSources {
        record_drops: records.drops(),
        embedder: embedder.map(|e| (e.stats(), e.capacity())),
    };
    infergate::observe::metrics::Metrics::new(shards, Arc::clone(table), sources)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Starts the embedder when the semantic cache is used (or `[embedder]` is configured).
/// Without a usable model the gateway still serves; the semantic cache is off and the log
/// says why.
fn start_embedder(cfg: &Config) -> Option<infergate::embed::EmbedderHandle> {
    let semantic = cfg
        .models
        .values()
        .any(|m| m.cache.as_ref().is_some_and(|c| c.semantic));
    if !semantic && cfg.embedder.is_none() {
        return None;
    }
    let ecfg = cfg.embedder.clone().unwrap_or_default();
    let dir = ecfg.model_dir.display().to_string();
    match infergate::embed::Embedder::start_from_config(ecfg) {
        Ok((handle, reason)) => {
            tracing::info!(model_dir = %dir, backend = %reason, "embedder started; semantic cache on");
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(model_dir = %dir, error = %e, "semantic cache off: the embedder could not start (run scripts/fetch-model.sh)");
            None
        }
    }
}
