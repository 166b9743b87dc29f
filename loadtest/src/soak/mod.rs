//! soak: infergate under a mixed load for a long time, watching for what grows. Every
//! window (10 s by default) all lanes of the mix run at their rates (streams, both
//! translations, exact-cache hits, provider errors and streams cut mid-way) while the
//! config is reloaded every few seconds; each window appends a row to a CSV: resident
//! memory, open descriptors, sockets, established TCP connections, threads (read half-way
//! through the window, under load), requests, errors and latency percentiles. At the end a
//! chart (SVG) and a summary, including the idle readings before and after.
//!
//! Bounded: it stops by itself after the chosen duration (each window's requests are
//! bounded by loadgen's deadline), talks only to 127.0.0.1, and every child dies with it.

mod chart;
mod mix;
mod reload;
pub mod sample;

pub use mix::{gateway_toml, lanes, Lane, Upstreams};
pub use sample::Resources;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::loadgen::{self, LoadgenConfig, Mode, Target};
use crate::scenario::{free_port, ChildProcess, ProcessError, TempDir};

/// Settings of a soak.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The gateway binary.
    pub infergate: PathBuf,
    /// The mockllm binary.
    pub mockllm: PathBuf,
    /// How long to run (it stops by itself).
    pub duration: Duration,
    /// Length of each window (one CSV row).
    pub window: Duration,
    /// Time between config reloads.
    pub reload_every: Duration,
    /// Multiplies every lane's rate.
    pub scale: f64,
    /// Where `soak.csv`, `soak.svg` and `summary.json` go.
    pub out: PathBuf,
}

/// Why a soak could not run.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// A child failed to start.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Files or sockets.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A load run failed as a whole.
    #[error("loadgen: {0}")]
    Loadgen(#[from] loadgen::LoadgenError),
    /// A lane that should succeed did not, before the soak started.
    #[error("lane {lane} gets no successful answer from the gateway ({detail}); see {stderr}")]
    LaneBroken {
        lane: String,
        detail: String,
        stderr: String,
    },
    /// The gateway exited during the soak.
    #[error("the gateway exited during the soak; end of its stderr:\n{0}")]
    GatewayGone(String),
    /// A mock provider exited (killed from outside): the rest would only measure errors.
    #[error(
        "{name} exited during the soak (not the gateway's doing); end of its stderr:\n{stderr}"
    )]
    MockGone { name: String, stderr: String },
    /// The chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
    /// The summary could not be written.
    #[error("summary: {0}")]
    Json(#[from] serde_json::Error),
    /// A child printed an unusable address.
    #[error("bad address {0:?}")]
    BadAddress(String),
}

/// One window's row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowRow {
    /// Seconds since the soak started, at the end of the window.
    pub t_s: f64,
    /// The gateway's resources half-way through the window.
    pub resources: Resources,
    /// Successful requests of the lanes meant to succeed.
    pub ok: u64,
    /// Failed requests of the lanes meant to succeed.
    pub errors: u64,
    /// Failed requests of the lanes meant to fail (provider errors passed on).
    pub expected_errors: u64,
    /// Latency percentiles of the successful requests of all lanes, µs.
    pub p50_us: u64,
    pub p99_us: u64,
    /// Reloads so far that succeeded / failed.
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

/// Totals of one lane over the soak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneTotals {
    pub name: String,
    pub fails_by_design: bool,
    pub ok: u64,
    pub errors: u64,
    /// Errors by kind (`status 500`, `reset`, `incomplete_stream`, ...).
    pub error_kinds: std::collections::BTreeMap<String, u64>,
}

/// What the soak found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakSummary {
    pub duration_s: f64,
    pub windows: usize,
    pub lanes: Vec<LaneTotals>,
    /// Before the first window, after a short warm-up, no traffic.
    pub idle_before: Resources,
    /// Two seconds after the last window, no traffic.
    pub idle_after: Resources,
    pub rss_kib_min: u64,
    pub rss_kib_max: u64,
    /// Least-squares slope of RSS over the second half of the windows, KiB per hour.
    pub rss_kib_per_hour_second_half: f64,
    pub fds_min: u64,
    pub fds_max: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub csv: String,
    pub chart: String,
}

/// Least-squares slope of `points` (x, y); 0 with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// The CSV header; [`csv_row`] writes the rows.
pub const CSV_HEADER: &str = "t_s,rss_kib,fds,sockets,tcp_established,threads,ok,errors,expected_errors,p50_us,p99_us,reloads_ok,reloads_failed";

/// One CSV row.
pub fn csv_row(row: &WindowRow) -> String {
    let r = &row.resources;
    format!(
        "{:.1},{},{},{},{},{},{},{},{},{},{},{},{}",
        row.t_s,
        r.rss_kib,
        r.fds,
        r.sockets,
        r.tcp_established,
        r.threads,
        row.ok,
        row.errors,
        row.expected_errors,
        row.p50_us,
        row.p99_us,
        row.reloads_ok,
        row.reloads_failed
    )
}

struct Started {
    mocks: Vec<ChildProcess>,
    gateway: ChildProcess,
    url: String,
    admin_port: u16,
}

fn port_of(url: &str) -> Result<u16, SoakError> {
    Target::parse(url)
        .map(|t| t.addr.port())
        .map_err(|_| SoakError::BadAddress(url.to_string()))
}

fn start(
    config: &SoakConfig,
    dir: &Path,
    load_cpus: &[usize],
    proxy_cpus: &[usize],
    token: &str,
) -> Result<Started, SoakError> {
    let mock = |name: &str, extra: &[&str]| -> Result<(ChildProcess, u16), SoakError> {
        let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--threads", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = ChildProcess::spawn(
            name,
            &config.mockllm,
            &args,
            load_cpus,
            &dir.join(format!("{name}.stderr")),
        )?;
        let url = child.wait_for_line("mockllm listening on ", Duration::from_secs(10))?;
        let port = port_of(&url)?;
        Ok((child, port))
    };
    let (normal, mock_port) = mock("mockllm", &[])?;
    let (failing, failing_port) = mock("mockllm-500", &["--fault", "status:500"])?;
    let (cutting, cutting_port) = mock("mockllm-reset", &["--fault", "reset-mid-stream"])?;
    let admin_port = free_port()?;
    let toml = gateway_toml(
        free_port()?,
        admin_port,
        &dir.join("requests.jsonl"),
        Upstreams {
            mock: mock_port,
            failing: failing_port,
            cutting: cutting_port,
        },
    );
    let config_path = dir.join("infergate.toml");
    std::fs::write(&config_path, toml)?;
    let gateway = ChildProcess::spawn_with_env(
        "infergate",
        &config.infergate,
        &["--config".into(), config_path.display().to_string()],
        &[
            (mix::ADMIN_TOKEN_ENV, token),
            (mix::ANTHROPIC_KEY_ENV, "soak-key"),
        ],
        proxy_cpus,
        &dir.join("infergate.stderr"),
    )?;
    let line = gateway.wait_for_line("infergate listening on ", Duration::from_secs(15))?;
    let url = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    port_of(&url)?;
    Ok(Started {
        mocks: vec![normal, failing, cutting],
        gateway,
        url,
        admin_port,
    })
}

fn lane_config(
    url: &str,
    lane: &Lane,
    mode: Mode,
    duration: Duration,
) -> Result<LoadgenConfig, SoakError> {
    let full = format!("{url}{}", lane.path);
    let target = Target::parse(&full).map_err(|_| SoakError::BadAddress(full.clone()))?;
    let mut lg = LoadgenConfig::new(target, full);
    lg.mode = mode;
    lg.duration = duration;
    lg.stream = lane.stream;
    lg.body = Some(lane.body.clone());
    lg.headers = lane.headers.clone();
    lg.max_connections = 256;
    lg.timeout = Duration::from_secs(5);
    Ok(lg)
}

/// Runs every lane once for `duration` at its rate × `scale`, in parallel threads.
fn run_lanes(
    url: &str,
    lanes: &[Lane],
    scale: f64,
    duration: Duration,
) -> Result<Vec<(loadgen::Report, Histogram<u64>)>, SoakError> {
    let configs = lanes
        .iter()
        .map(|lane| {
            let rate = (lane.rate * scale).max(0.1);
            lane_config(url, lane, Mode::OpenLoop { rate }, duration)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|lg| scope.spawn(move || loadgen::run_with_latency(lg)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(loadgen::LoadgenError::Worker("a lane panicked".into()))
                })
            })
            .collect()
    });
    results
        .into_iter()
        .map(|r| r.map_err(SoakError::from))
        .collect()
}

fn error_kinds(report: &loadgen::Report, into: &mut std::collections::BTreeMap<String, u64>) {
    let e = &report.errors;
    for (kind, n) in [
        ("connect", e.connect),
        ("reset", e.reset),
        ("timeout", e.timeout),
        ("protocol", e.protocol),
        ("incomplete_stream", e.incomplete_stream),
        ("io", e.io),
    ] {
        if n > 0 {
            *into.entry(kind.to_string()).or_default() += n;
        }
    }
    for (code, n) in &e.status {
        *into.entry(format!("status {code}")).or_default() += n;
    }
    if report.requests.not_sent > 0 {
        *into.entry("not_sent".to_string()).or_default() += report.requests.not_sent;
    }
}

/// Runs the soak; `progress` gets one line per window.
pub fn run(config: &SoakConfig, progress: &mut dyn FnMut(&str)) -> Result<SoakSummary, SoakError> {
    let cpus = crate::affinity::allowed_cpus();
    let load_cpus = vec![cpus[0]];
    let proxy_cpus = vec![*cpus.get(1).unwrap_or(&cpus[0])];
    crate::affinity::set_process_affinity(0, &load_cpus)?;
    std::fs::create_dir_all(&config.out)?;
    let dir = TempDir::new()?;
    let token = format!("soak-{}-{}", std::process::id(), fastrand::u64(..));
    let mut started = start(config, &dir.0, &load_cpus, &proxy_cpus, &token)?;
    let pid = started.gateway.pid();
    progress(&format!(
        "gateway at {} (pid {pid}, cpu {}), admin 127.0.0.1:{}",
        started.url, proxy_cpus[0], started.admin_port
    ));
    let lanes = lanes();

    // Each lane once, so a broken route shows now, not as an hour of errors.
    for lane in &lanes {
        let lg = lane_config(
            &started.url,
            lane,
            Mode::ClosedLoop { connections: 1 },
            Duration::from_millis(300),
        )?;
        let report = loadgen::run(&lg)?;
        if !lane.fails && (report.requests.ok == 0 || report.errors.total > 0) {
            let mut kinds = Default::default();
            error_kinds(&report, &mut kinds);
            return Err(SoakError::LaneBroken {
                lane: lane.name.to_string(),
                detail: format!("{} ok, errors {kinds:?}", report.requests.ok),
                stderr: started.gateway.stderr_tail(),
            });
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle_before =
        sample::read(pid).ok_or_else(|| SoakError::GatewayGone(started.gateway.stderr_tail()))?;

    let csv_path = config.out.join("soak.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
    writeln!(csv, "{CSV_HEADER}")?;
    csv.flush()?;
    let reloader = reload::Reloader::start(started.admin_port, token.clone(), config.reload_every);
    let mut totals: Vec<LaneTotals> = lanes
        .iter()
        .map(|l| LaneTotals {
            name: l.name.to_string(),
            fails_by_design: l.fails,
            ok: 0,
            errors: 0,
            error_kinds: Default::default(),
        })
        .collect();
    let mut rows: Vec<WindowRow> = Vec::new();
    let began = Instant::now();
    let result = loop {
        if began.elapsed() + config.window / 2 > config.duration {
            break Ok(());
        }
        // The lanes run in their own thread while this one reads the gateway half-way.
        let url = started.url.clone();
        let lanes_run = {
            let lanes = lanes.clone();
            let (scale, window) = (config.scale, config.window);
            std::thread::spawn(move || run_lanes(&url, &lanes, scale, window))
        };
        std::thread::sleep(config.window / 2);
        let resources = sample::read(pid);
        let results = match lanes_run.join() {
            Ok(r) => r,
            Err(_) => Err(SoakError::Loadgen(loadgen::LoadgenError::Worker(
                "the lanes' thread panicked".into(),
            ))),
        };
        let Some(resources) = resources else {
            break Err(SoakError::GatewayGone(started.gateway.stderr_tail()));
        };
        if let Some(mock) = started
            .mocks
            .iter_mut()
            .find_map(|m| m.has_exited().then_some(m))
        {
            break Err(SoakError::MockGone {
                name: mock.name().to_string(),
                stderr: mock.stderr_tail(),
            });
        }
        let results = match results {
            Ok(results) => results,
            Err(e) => break Err(e),
        };
        let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| SoakError::Chart(e.to_string()))?;
        let mut row = WindowRow {
            t_s: began.elapsed().as_secs_f64(),
            resources,
            ok: 0,
            errors: 0,
            expected_errors: 0,
            p50_us: 0,
            p99_us: 0,
            reloads_ok: reloader.ok(),
            reloads_failed: reloader.failed(),
        };
        for ((lane, total), (report, hist)) in lanes.iter().zip(&mut totals).zip(&results) {
            total.ok += report.requests.ok;
            let failed = report.errors.total + report.requests.not_sent;
            total.errors += failed;
            error_kinds(report, &mut total.error_kinds);
            if lane.fails {
                row.expected_errors += failed;
            } else {
                row.ok += report.requests.ok;
                row.errors += failed;
            }
            let _ = latency.add(hist);
        }
        if !latency.is_empty() {
            row.p50_us = latency.value_at_quantile(0.5);
            row.p99_us = latency.value_at_quantile(0.99);
        }
        writeln!(csv, "{}", csv_row(&row))?;
        csv.flush()?;
        progress(&format!(
            "t={:.0}s rss={} KiB fds={} tcp={} threads={} ok={} errors={} expected_errors={} p99={} µs reloads={}/{}",
            row.t_s,
            resources.rss_kib,
            resources.fds,
            resources.tcp_established,
            resources.threads,
            row.ok,
            row.errors,
            row.expected_errors,
            row.p99_us,
            row.reloads_ok,
            row.reloads_ok + row.reloads_failed
        ));
        rows.push(row);
    };
    let (reloads_ok, reloads_failed) = reloader.stop();
    result?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_after =
        sample::read(pid).ok_or_else(|| SoakError::GatewayGone(started.gateway.stderr_tail()))?;
    drop(started);

    let chart_path = config.out.join("soak.svg");
    chart::draw(&chart_path, &rows).map_err(SoakError::Chart)?;
    let half: Vec<(f64, f64)> = rows
        .iter()
        .skip(rows.len() / 2)
        .map(|r| (r.t_s / 3600.0, r.resources.rss_kib as f64))
        .collect();
    let summary = SoakSummary {
        duration_s: began.elapsed().as_secs_f64(),
        windows: rows.len(),
        lanes: totals,
        idle_before,
        idle_after,
        rss_kib_min: rows.iter().map(|r| r.resources.rss_kib).min().unwrap_or(0),
        rss_kib_max: rows.iter().map(|r| r.resources.rss_kib).max().unwrap_or(0),
        rss_kib_per_hour_second_half: slope(&half),
        fds_min: rows.iter().map(|r| r.resources.fds).min().unwrap_or(0),
        fds_max: rows.iter().map(|r| r.resources.fds).max().unwrap_or(0),
        reloads_ok,
        reloads_failed,
        csv: csv_path.display().to_string(),
        chart: chart_path.display().to_string(),
    };
    std::fs::write(
        config.out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_a_flat_series() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 * f64::from(i) + 7.0))
            .collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 5.0)).collect();
        assert_eq!(slope(&flat), 0.0);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), 0.0);
    }

    #[test]
    fn csv_rows_match_the_header() {
        let row = WindowRow {
            t_s: 10.04,
            resources: Resources {
                rss_kib: 1,
                fds: 2,
                sockets: 3,
                tcp_established: 4,
                threads: 5,
            },
            ok: 6,
            errors: 7,
            expected_errors: 8,
            p50_us: 9,
            p99_us: 10,
            reloads_ok: 11,
            reloads_failed: 12,
        };
        assert_eq!(csv_row(&row), "10.0,1,2,3,4,5,6,7,8,9,10,11,12");
        assert_eq!(
            CSV_HEADER.split(',').count(),
            csv_row(&row).split(',').count()
        );
    }
}
