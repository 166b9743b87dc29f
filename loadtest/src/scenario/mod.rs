//! scenario: one run that measures the direct path (loadgen → mockllm) and the same load
//! through infergate and through nginx, and reports what each proxy adds.
//!
//! The load generator and mockllm share the first allowed CPU, the proxy gets the second,
//! so the proxy's cost is not hidden by (or confused with) the load it is under. Gateways
//! the scenario does not start (`--gateway NAME=URL`, pointed by their owner at its
//! mockllm) are measured the same way, their CPU read from the PID they are given.

mod compare;
mod otlp_sink;
mod out;
pub mod plot;
mod process;
mod proxy_config;
pub mod syscalls;
pub mod threads;

pub use compare::{PathResult, RateResult, ScenarioReport};
pub use out::{write_out, OutputError};
pub use process::{find_in_path, free_port, process_cpu_time, ChildProcess, ProcessError};
pub use proxy_config::{
    failover_toml, governed_toml, guarded_toml, infergate_toml, nginx_conf, FirstTarget, BENCH_KEY,
    NGINX_TEMPLATE,
};
pub use syscalls::{SyscallReport, SyscallTool};
pub use threads::ThreadCpu;

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
    /// Measure the gateway binary in `infergate` (false: only direct, nginx and `gateways`).
    pub start_infergate: bool,
    /// The mock's port on 127.0.0.1 (0: any free port), fixed so a gateway the scenario
    /// does not start can be pointed at it beforehand.
    pub mock_port: u16,
    /// Gateways already running (started by the user), measured beside the others.
    pub gateways: Vec<ExternalGateway>,
    /// Count the live descendants of each external gateway's PID too (e.g. nginx's
    /// workers under its master).
    pub gateway_children: bool,
    /// The optional syscall-counting pass.
    pub syscalls: Option<SyscallPass>,
}

/// A gateway the user runs, pointed at the scenario's mockllm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalGateway {
    /// Its name in the tables and charts.
    pub name: String,
    /// `http://host:port` (chat completions are posted to `/v1/chat/completions`) or a full
    /// URL with a path, used as is.
    pub url: String,
    /// Its process, whose CPU time is charged per request; None: latency only.
    pub pid: Option<u32>,
}

/// A separate pass that counts syscalls per request per target (not used for latency:
/// the counter slows the process).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyscallPass {
    /// perf, strace, or whichever works.
    pub tool: SyscallTool,
    /// Open-loop rate of the counted window.
    pub rate: f64,
    /// Length of the counted window.
    pub duration: Duration,
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
    /// A gateway given with `--gateway` did not answer a chat completion with a 2xx.
    #[error(
        "gateway {name} at {url} answered no request ({detail}); is it running and routing \
         gpt-4o-mini to the mockllm at {mock_url}?"
    )]
    GatewayDown {
        name: String,
        url: String,
        mock_url: String,
        detail: String,
    },
    /// Syscalls could not be counted.
    #[error(transparent)]
    Syscalls(#[from] syscalls::SyscallError),
}

/// A proxied (or direct) way to reach the mock.
struct MeasuredPath {
    name: String,
    url: String,
    /// The process whose CPU time is charged to the path (None: direct, or a gateway
    /// given without a PID).
    pid: Option<u32>,
    /// Count `pid`'s live descendants too.
    children: bool,
    /// The proxy process when the scenario started it (killed when dropped).
    _child: Option<ChildProcess>,
    /// Request headers this path needs (the gateway key).
    headers: Vec<(String, String)>,
}

impl MeasuredPath {
    /// The measured process and, if asked, its live descendants.
    fn pids(&self) -> Vec<u32> {
        let Some(pid) = self.pid else {
            return Vec::new();
        };
        let mut pids = vec![pid];
        if self.children {
            pids.extend(threads::descendants(pid));
        }
        pids
    }
}

/// A temporary directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> std::io::Result<Self> {
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
            format!("127.0.0.1:{}", config.mock_port),
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
        name: "direct".into(),
        url: mock_url.clone(),
        pid: None,
        children: false,
        _child: None,
        headers: Vec::new(),
    }];
    if config.start_infergate && config.infergate.is_file() {
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
    } else if config.start_infergate {
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
    for gateway in &config.gateways {
        let path = MeasuredPath {
            name: gateway.name.clone(),
            url: gateway.url.clone(),
            pid: gateway.pid,
            children: config.gateway_children,
            _child: None,
            headers: Vec::new(),
        };
        check_answers(config, &path, &mock_url)?;
        match gateway.pid {
            Some(pid) if threads::snapshot(&path.pids()).is_some() => progress(&format!(
                "{} at {} (pid {pid}{}, not pinned by the scenario)",
                path.name,
                path.url,
                if path.children {
                    " and descendants"
                } else {
                    ""
                }
            )),
            Some(pid) => notes.push(format!(
                "{}: pid {pid} not readable in /proc, CPU not measured",
                path.name
            )),
            None => notes.push(format!("{}: no --gateway-pid, CPU not measured", path.name)),
        }
        paths.push(path);
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
    // A failed syscall pass costs its table, not the measurements already taken.
    let syscalls = match config.syscalls {
        Some(pass) => match count_syscalls(config, &paths, pass, &dir.0, progress, &mut notes) {
            Ok(report) => Some(report),
            Err(e) => {
                notes.push(format!("syscalls not counted: {e}"));
                None
            }
        },
        None => None,
    };
    drop(paths);
    drop(unavailable_mock);
    drop(mock);
    Ok(ScenarioReport {
        stream: config.stream,
        body_bytes: config.body_bytes,
        duration_s: config.duration.as_secs_f64(),
        load_cpu: load_cpus[0],
        proxy_cpu: proxy_cpus[0],
        mock_url,
        notes,
        runs: rates,
        syscalls,
    })
}

/// One short request through a gateway the scenario did not start, so a gateway that is
/// down or routes elsewhere is reported at once instead of as a run full of errors.
fn check_answers(
    config: &ScenarioConfig,
    path: &MeasuredPath,
    mock_url: &str,
) -> Result<(), ScenarioError> {
    let down = |detail: String| ScenarioError::GatewayDown {
        name: path.name.clone(),
        url: path.url.clone(),
        mock_url: mock_url.to_string(),
        detail,
    };
    let mut lg = loadgen_config(config, path, Mode::ClosedLoop { connections: 1 })?;
    lg.duration = Duration::from_millis(300);
    lg.timeout = Duration::from_secs(2);
    let report = loadgen::run(&lg).map_err(|e| down(e.to_string()))?;
    if report.requests.ok == 0 {
        let e = &report.errors;
        return Err(down(format!(
            "{} errors: connect {}, reset {}, timeout {}, protocol {}, status {:?}",
            e.total, e.connect, e.reset, e.timeout, e.protocol, e.status
        )));
    }
    Ok(())
}

/// The syscall pass: for each target with a process, a counter attached for one open-loop
/// window at `pass.rate`, divided by the requests answered in it.
fn count_syscalls(
    config: &ScenarioConfig,
    paths: &[MeasuredPath],
    pass: SyscallPass,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
    notes: &mut Vec<String>,
) -> Result<SyscallReport, ScenarioError> {
    let tool = syscalls::resolve(pass.tool)?;
    let tool_name = if tool == SyscallTool::Perf {
        "perf"
    } else {
        "strace"
    };
    let mut results = Vec::new();
    for path in paths.iter().filter(|p| p.pid.is_some()) {
        progress(&format!(
            "{} syscalls with {tool_name} at {} req/s for {:?}",
            path.name, pass.rate, pass.duration
        ));
        let counter = syscalls::Counter::start(tool, &path.pids(), dir)?;
        let mut lg = loadgen_config(config, path, Mode::OpenLoop { rate: pass.rate })?;
        lg.duration = pass.duration;
        let report = loadgen::run(&lg);
        let counts = counter.stop();
        let report = report?;
        match counts {
            Ok(counts) => {
                results.push(syscalls::summarize(&path.name, &counts, report.requests.ok));
            }
            Err(e) => notes.push(format!("{}: syscalls not counted: {e}", path.name)),
        }
    }
    Ok(SyscallReport {
        tool: tool_name.to_string(),
        mode: format!(
            "open-loop {} req/s for {:.1} s",
            pass.rate,
            pass.duration.as_secs_f64()
        ),
        paths: results,
    })
}

/// Where a path's chat completions are posted: its URL as given when it has a path, else
/// `/v1/chat/completions` on it.
fn chat_url(base: &str) -> String {
    let rest = base.strip_prefix("http://").unwrap_or(base);
    match rest.find('/') {
        Some(i) if rest.len() > i + 1 => base.to_string(),
        _ => format!("{}/v1/chat/completions", base.trim_end_matches('/')),
    }
}

/// The load generator's settings for `path` under `mode` (duration left at its default).
fn loadgen_config(
    config: &ScenarioConfig,
    path: &MeasuredPath,
    mode: Mode,
) -> Result<LoadgenConfig, ScenarioError> {
    let url = chat_url(&path.url);
    let target = Target::parse(&url).map_err(|_| ScenarioError::BadAddress {
        name: path.name.clone(),
        text: url.clone(),
    })?;
    let mut lg = LoadgenConfig::new(target, url);
    lg.mode = mode;
    lg.max_connections = 512;
    lg.stream = config.stream;
    lg.body_bytes = config.body_bytes;
    lg.timeout = Duration::from_secs(5);
    lg.headers = path.headers.clone();
    Ok(lg)
}

fn measure(
    config: &ScenarioConfig,
    path: &MeasuredPath,
    mode: Mode,
    duration: Duration,
) -> Result<PathResult, ScenarioError> {
    let mut lg = loadgen_config(config, path, mode)?;
    lg.duration = duration;
    // Descendants are listed once, before: one started during the run is not counted.
    let pids = path.pids();
    let before = threads::snapshot(&pids);
    let (report, latency) = loadgen::run_with_latency(&lg)?;
    let after = threads::snapshot(&pids);
    let ok = report.requests.ok;
    let tick = threads::tick();
    let (cpu_us_per_request, thread_cpu) = match (before, after) {
        (Some(before), Some(after)) if ok > 0 => {
            let ticks = after.process_ticks.saturating_sub(before.process_ticks);
            let cpu = ticks as f64 * tick.as_nanos() as f64 / 1000.0 / ok as f64;
            (Some(cpu), threads::breakdown(&before, &after, ok, tick))
        }
        _ => (None, Vec::new()),
    };
    Ok(PathResult {
        path: path.name.clone(),
        pid: path.pid,
        cpu_us_per_request,
        threads: thread_cpu,
        latency_spectrum: plot::spectrum(&latency),
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
        name: name.to_string(),
        url,
        pid: Some(child.pid()),
        children: false,
        _child: Some(child),
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
        name: "nginx".into(),
        url: format!("http://127.0.0.1:{port}"),
        pid: Some(child.pid()),
        children: false,
        _child: Some(child),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_completions_go_to_the_default_path_unless_the_url_has_one() {
        assert_eq!(
            chat_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            chat_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            chat_url("http://127.0.0.1:8080/openai/chat"),
            "http://127.0.0.1:8080/openai/chat"
        );
    }
}
