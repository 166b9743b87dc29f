//! scenario: one run that measures the direct path (loadgen → mockllm) and the same load
//! through infergate and through nginx, and reports what each proxy adds.
//!
//! The load generator and mockllm share the first allowed CPU, the proxy gets the second,
//! so the proxy's cost is not hidden by (or confused with) the load it is under.

mod compare;
mod otlp_sink;
mod process;
mod proxy_config;

pub use compare::{PathResult, RateResult, ScenarioReport};
pub use process::{find_in_path, free_port, process_cpu_time, ChildProcess, ProcessError};
pub use proxy_config::{
    failover_toml, governed_toml, guarded_toml, infergate_toml, nginx_conf, FirstTarget, BENCH_KEY,
    NGINX_TEMPLATE,
};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::loadgen::{self, LoadgenConfig, Mode, Target};

/// Settings of a scenario run.
#[derive(Debug, Clone)]
pub struct ScenarioConfig {
    /// The gateway binary; the infergate path is skipped (with a note) when it is missing.
    pub infergate: PathBuf,
    /// The mockllm binary.
    pub mockllm: PathBuf,
    /// Measure nginx too when it is on PATH.
    pub nginx: bool,
    /// Open-loop rates, requests per second.
    pub rates: Vec<f64>,
    /// Length of each measured run.
    pub duration: Duration,
    /// Unmeasured run per path before the measured ones (warms pools and caches).
    pub warmup: Duration,
    /// Streaming chat requests.
    pub stream: bool,
    /// Chat body size.
    pub body_bytes: usize,
    /// Connections of the closed-loop (max throughput) run; 0 skips it.
    pub closed_loop_connections: usize,
    /// Tokens per mock completion.
    pub mock_tokens: u32,
    /// Also measure infergate with a key, its tenant, limits and budgets on (every request
    /// admitted, reserved and settled), beside the same gateway without them.
    pub governance: bool,
    /// Also measure infergate with every guardrail rule redacting requests and answers.
    pub guardrails: bool,
    /// Also measure infergate with its metrics off (the default gateway keeps them).
    pub no_metrics: bool,
    /// Also measure infergate with tracing on at ratio 1.0, exporting to a sink.
    pub traces: bool,
    /// Also measure failover: the alias's first target fails fast (its connect is refused,
    /// or it answers 503 at once), then the mock answers; each with ejection off (every
    /// request pays the failed attempt) and with the default ejection (the target is
    /// ejected after 5 failures and skipped).
    pub failover: bool,
}

/// Which configuration a measured gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Governance,
    Guardrails,
    NoMetrics,
    Traced,
    /// The alias asks `first` before the mock; `eject`: default ejection, else none.
    Failover {
        first: FirstTarget,
        eject: bool,
    },
}

/// Where the failing first targets of the failover variants are.
#[derive(Debug, Clone, Copy)]
struct DownPorts {
    /// A port nothing listens on.
    refused: u16,
    /// A mockllm answering 503 to every call.
    unavailable: u16,
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A child process failed to start.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Filesystem or socket set-up failed.
    #[error("setup: {0}")]
    Io(#[from] std::io::Error),
    /// A load run failed as a whole.
    #[error("loadgen: {0}")]
    Loadgen(#[from] loadgen::LoadgenError),
    /// A child printed an address that could not be used.
    #[error("bad address from {name}: {text:?}")]
    BadAddress { name: String, text: String },
}

/// A proxied (or direct) way to reach the mock.
struct MeasuredPath {
    name: &'static str,
    url: String,
    /// The proxy process, whose CPU time is charged to the path (None: direct).
    proxy: Option<ChildProcess>,
    /// Request headers this path needs (the gateway key).
    headers: Vec<(String, String)>,
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("infergate-scenario-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the whole scenario; every child process is gone when it returns (even on error).
/// `progress` receives one line per step, for people watching.
pub fn run(
    config: &ScenarioConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ScenarioReport, ScenarioError> {
    let cpus = crate::affinity::allowed_cpus();
    let load_cpus = vec![cpus[0]];
    let proxy_cpus = vec![*cpus.get(1).unwrap_or(&cpus[0])];
    let mut notes = Vec::new();
    if cpus.len() < 2 {
        notes.push("only one CPU allowed: load and proxy share it".to_string());
    }
    // This thread (and the loadgen threads it starts) run on the load CPU.
    crate::affinity::set_process_affinity(0, &load_cpus)?;
    let dir = TempDir::new()?;

    let mock = ChildProcess::spawn(
        "mockllm",
        &config.mockllm,
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--threads".into(),
            "1".into(),
            "--tokens".into(),
            config.mock_tokens.to_string(),
        ],
        &load_cpus,
        &dir.0.join("mockllm.stderr"),
    )?;
    let mock_url = mock.wait_for_line("mockllm listening on ", Duration::from_secs(10))?;
    let mock_port = port_of(&mock_url, "mockllm")?;
    progress(&format!("mockllm at {mock_url} (cpu {})", load_cpus[0]));

    // The failover variants' first targets: a port nothing listens on (bound, then
    // released), and a second mockllm on the load CPU answering every call 503 at once.
    let mut unavailable_mock = None;
    let down = if config.failover {
        let mock503 = ChildProcess::spawn(
            "mockllm-503",
            &config.mockllm,
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--threads".into(),
                "1".into(),
                "--fault".into(),
                "status:503".into(),
            ],
            &load_cpus,
            &dir.0.join("mockllm-503.stderr"),
        )?;
        let url = mock503.wait_for_line("mockllm listening on ", Duration::from_secs(10))?;
        let unavailable = port_of(&url, "mockllm-503")?;
        progress(&format!(
            "mockllm answering 503 at {url} (cpu {})",
            load_cpus[0]
        ));
        unavailable_mock = Some(mock503);
        Some(DownPorts {
            refused: free_port()?,
            unavailable,
        })
    } else {
        None
    };

    let mut paths = vec![MeasuredPath {
        name: "direct",
        url: mock_url.clone(),
        proxy: None,
        headers: Vec::new(),
    }];
    if config.infergate.is_file() {
        let mut kinds = vec![Variant::Plain];
        if config.governance {
            kinds.push(Variant::Governance);
        }
        if config.guardrails {
            kinds.push(Variant::Guardrails);
        }
        if config.no_metrics {
            kinds.push(Variant::NoMetrics);
        }
        if config.traces {
            kinds.push(Variant::Traced);
        }
        if config.failover {
            for first in [FirstTarget::Refused, FirstTarget::Unavailable] {
                for eject in [false, true] {
                    kinds.push(Variant::Failover { first, eject });
                }
            }
        }
        for variant in kinds {
            let path = start_infergate(config, &dir.0, mock_port, down, &proxy_cpus, variant)?;
            progress(&format!(
                "{} at {} (cpu {})",
                path.name, path.url, proxy_cpus[0]
            ));
            paths.push(path);
        }
    } else {
        notes.push(format!(
            "infergate skipped: {} not found (cargo build --release)",
            config.infergate.display()
        ));
    }
    match find_in_path("nginx") {
        Some(nginx) if config.nginx => {
            paths.push(start_nginx(&nginx, &dir.0, mock_port, &proxy_cpus)?);
            progress(&format!(
                "nginx at {} (cpu {})",
                paths[paths.len() - 1].url,
                proxy_cpus[0]
            ));
        }
        Some(_) => {}
        None => notes.push("nginx skipped: not on PATH".to_string()),
    }

    if !config.warmup.is_zero() {
        for path in &paths {
            progress(&format!("warm-up {} for {:?}", path.name, config.warmup));
            let rate = config.rates.first().copied().unwrap_or(1000.0);
            measure(config, path, Mode::OpenLoop { rate }, config.warmup)?;
        }
    }
    let mut rates = Vec::new();
    for &rate in &config.rates {
        let mut results = Vec::new();
        for path in &paths {
            progress(&format!(
                "{} at {rate} req/s for {:?}",
                path.name, config.duration
            ));
            results.push(measure(
                config,
                path,
                Mode::OpenLoop { rate },
                config.duration,
            )?);
        }
        rates.push(RateResult {
            mode: format!("open-loop {rate} req/s"),
            paths: results,
        });
    }
    if config.closed_loop_connections > 0 {
        let mode = Mode::ClosedLoop {
            connections: config.closed_loop_connections,
        };
        let mut results = Vec::new();
        for path in &paths {
            progress(&format!(
                "{} closed loop, {} connections, for {:?}",
                path.name, config.closed_loop_connections, config.duration
            ));
            results.push(measure(config, path, mode, config.duration)?);
        }
        rates.push(RateResult {
            mode: format!("closed-loop {} connections", config.closed_loop_connections),
            paths: results,
        });
    }
    drop(paths);
    drop(unavailable_mock);
    drop(mock);
    Ok(ScenarioReport {
        stream: config.stream,
        body_bytes: config.body_bytes,
        duration_s: config.duration.as_secs_f64(),
        load_cpu: load_cpus[0],
        proxy_cpu: proxy_cpus[0],
        notes,
        runs: rates,
    })
}

fn measure(
    config: &ScenarioConfig,
    path: &MeasuredPath,
    mode: Mode,
    duration: Duration,
) -> Result<PathResult, ScenarioError> {
    let url = format!("{}/v1/chat/completions", path.url);
    let target = Target::parse(&url).map_err(|_| ScenarioError::BadAddress {
        name: path.name.to_string(),
        text: url.clone(),
    })?;
    let mut lg = LoadgenConfig::new(target, url);
    lg.mode = mode;
    lg.duration = duration;
    lg.max_connections = 512;
    lg.stream = config.stream;
    lg.body_bytes = config.body_bytes;
    lg.timeout = Duration::from_secs(5);
    lg.headers = path.headers.clone();
    let cpu_before = path.proxy.as_ref().and_then(ChildProcess::cpu_time);
    let report = loadgen::run(&lg)?;
    let cpu_after = path.proxy.as_ref().and_then(ChildProcess::cpu_time);
    let cpu_us_per_request = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if report.requests.ok > 0 => {
            Some(after.saturating_sub(before).as_secs_f64() * 1e6 / report.requests.ok as f64)
        }
        _ => None,
    };
    Ok(PathResult {
        path: path.name.to_string(),
        cpu_us_per_request,
        report,
    })
}

fn start_infergate(
    config: &ScenarioConfig,
    dir: &Path,
    mock_port: u16,
    down: Option<DownPorts>,
    cpus: &[usize],
    variant: Variant,
) -> Result<MeasuredPath, ScenarioError> {
    let name = match variant {
        Variant::Plain => "infergate",
        Variant::Governance => "infergate+governance",
        Variant::Guardrails => "infergate+guardrails",
        Variant::NoMetrics => "infergate-metrics",
        Variant::Traced => "infergate+traces",
        Variant::Failover {
            first: FirstTarget::Refused,
            eject: false,
        } => "refused-first",
        Variant::Failover {
            first: FirstTarget::Refused,
            eject: true,
        } => "refused-first+eject",
        Variant::Failover {
            first: FirstTarget::Unavailable,
            eject: false,
        } => "503-first",
        Variant::Failover {
            first: FirstTarget::Unavailable,
            eject: true,
        } => "503-first+eject",
    };
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.as_path();
    let config_path = dir.join("infergate.toml");
    let toml = infergate_toml(
        free_port()?,
        free_port()?,
        &dir.join("requests.jsonl"),
        mock_port,
    );
    let toml = match variant {
        Variant::Plain => toml,
        Variant::Governance => governed_toml(&toml),
        Variant::Guardrails => guarded_toml(&toml),
        Variant::NoMetrics => format!("{toml}\n[metrics]\nenabled = false\n"),
        Variant::Traced => {
            let sink = otlp_sink::start()?;
            format!("{toml}\n[otel]\nendpoint = \"http://{sink}\"\nsample_ratio = 1.0\n")
        }
        Variant::Failover { first, eject } => {
            let down = down.ok_or_else(|| {
                std::io::Error::other("failover variant without its failing targets")
            })?;
            let port = match first {
                FirstTarget::Refused => down.refused,
                FirstTarget::Unavailable => down.unavailable,
            };
            failover_toml(&toml, port, eject)
        }
    };
    std::fs::write(&config_path, toml)?;
    let child = ChildProcess::spawn(
        "infergate",
        &config.infergate,
        &["--config".into(), config_path.display().to_string()],
        cpus,
        &dir.join("infergate.stderr"),
    )?;
    let line = child.wait_for_line("infergate listening on ", Duration::from_secs(15))?;
    // The line goes on after the URL: "http://ADDR (N shard(s), DRIVER driver)".
    let url = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    port_of(&url, "infergate")?;
    let headers = if variant == Variant::Governance {
        vec![("authorization".to_string(), format!("Bearer {BENCH_KEY}"))]
    } else {
        Vec::new()
    };
    Ok(MeasuredPath {
        name,
        url,
        proxy: Some(child),
        headers,
    })
}

fn start_nginx(
    nginx: &Path,
    dir: &Path,
    mock_port: u16,
    cpus: &[usize],
) -> Result<MeasuredPath, ScenarioError> {
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let port = free_port()?;
    let conf_path = nginx_dir.join("nginx.conf");
    std::fs::write(&conf_path, nginx_conf(&nginx_dir, port, mock_port))?;
    let child = ChildProcess::spawn(
        "nginx",
        nginx,
        &[
            "-p".into(),
            format!("{}/", nginx_dir.display()),
            "-c".into(),
            conf_path.display().to_string(),
        ],
        cpus,
        &nginx_dir.join("nginx.stderr"),
    )?;
    child.wait_for_port(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(10),
    )?;
    Ok(MeasuredPath {
        name: "nginx",
        url: format!("http://127.0.0.1:{port}"),
        proxy: Some(child),
        headers: Vec::new(),
    })
}

/// The port of `http://127.0.0.1:PORT[/...]`.
fn port_of(url: &str, name: &str) -> Result<u16, ScenarioError> {
    Target::parse(url)
        .map(|t| t.addr.port())
        .map_err(|_| ScenarioError::BadAddress {
            name: name.to_string(),
            text: url.to_string(),
        })
}
