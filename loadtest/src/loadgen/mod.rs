//! loadgen: an open-loop, fixed-rate HTTP load generator that measures latency from each
//! request's *scheduled* send time (so a slow server cannot hide its stalls: no coordinated
//! omission), with keep-alive connection pools, SSE awareness and HDR histograms.

mod config;
mod exchange;
mod recorder;
mod report;
mod request;
mod target;
mod worker;

pub use config::{parse_duration, LoadgenConfig, Mode};
pub use recorder::ErrorKind;
pub use report::{ErrorCounts, LatencySummary, Report, RequestCounts};
pub use request::chat_body;
pub use target::{Target, TargetError};

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long past `duration + timeout` a run waits for a stuck worker before giving up.
const WATCHDOG_GRACE: Duration = Duration::from_secs(5);

/// Why a run could not happen (failures of single requests are counted, not returned).
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// Invalid settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A worker thread could not start or crashed.
    #[error("worker thread: {0}")]
    Worker(String),
}

/// Runs the load described by `config` to completion and returns the merged report.
pub fn run(config: &LoadgenConfig) -> Result<Report, LoadgenError> {
    run_with_latency(config).map(|(report, _)| report)
}

/// Like [`run`], and also hands back the merged latency histogram of the successful
/// requests (µs), for callers that draw the whole percentile spectrum, not only the
/// percentiles the report keeps.
pub fn run_with_latency(config: &LoadgenConfig) -> Result<(Report, Histogram<u64>), LoadgenError> {
    config.validate()?;
    let threads = config.threads.max(1);
    let request = request::build_request(config);
    let cpus = crate::affinity::allowed_cpus();
    // All workers share one start instant so their schedules interleave evenly.
    let start = Instant::now() + Duration::from_millis(20);
    // Workers end by themselves at the drain deadline; this only guards against a worker
    // that is stuck anyway, so a run can never hang.
    let watchdog = start + config.duration + config.timeout + WATCHDOG_GRACE;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for index in 0..threads {
        let share = config.share_for_worker(index, threads);
        let request = request.clone();
        let cpus = cpus.clone();
        let pin = config.pin;
        let done_tx = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || {
                if pin {
                    crate::affinity::pin_current_thread(&cpus, index);
                }
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    worker::run_worker(share, request, start)
                }))
                .unwrap_or_else(|_| Err("a worker panicked".to_string()));
                let _ = done_tx.send(result);
            })
            .map_err(|e| LoadgenError::Worker(e.to_string()))?;
    }
    drop(done_tx);
    let mut merged = recorder::Recorder::new().map_err(|e| LoadgenError::Worker(e.to_string()))?;
    for _ in 0..threads {
        let wait = watchdog.saturating_duration_since(Instant::now());
        let recorder = done_rx
            .recv_timeout(wait)
            .map_err(|_| {
                LoadgenError::Worker("a worker did not finish by the hard deadline".to_string())
            })?
            .map_err(LoadgenError::Worker)?;
        merged.merge(&recorder);
    }
    let elapsed = start.elapsed();
    let report = report::Report::new(config, &merged, elapsed);
    Ok((report, merged.latency))
}
