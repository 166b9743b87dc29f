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
    config.validate()?;
    let threads = config.threads.max(1);
    let request = request::build_request(config);
    let cpus = crate::affinity::allowed_cpus();
    // All workers share one start instant so their schedules interleave evenly.
    let start = Instant::now() + Duration::from_millis(20);
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let share = config.share_for_worker(index, threads);
        let request = request.clone();
        let cpus = cpus.clone();
        let pin = config.pin;
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || {
                if pin {
                    crate::affinity::pin_current_thread(&cpus, index);
                }
                worker::run_worker(share, request, start)
            })
            .map_err(|e| LoadgenError::Worker(e.to_string()))?;
        handles.push(handle);
    }
    let mut merged = recorder::Recorder::new().map_err(|e| LoadgenError::Worker(e.to_string()))?;
    for handle in handles {
        let recorder = handle
            .join()
            .map_err(|_| LoadgenError::Worker("a worker panicked".to_string()))?
            .map_err(|e| LoadgenError::Worker(e.to_string()))?;
        merged.merge(&recorder);
    }
    let elapsed = start.elapsed();
    Ok(report::Report::new(config, &merged, elapsed))
}
