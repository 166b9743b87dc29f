//! Charts of a scenario's result, as SVG files a person can read at a glance: the latency
//! percentile spectrum of every target under each load, and CPU per request by rate.

mod data;
mod svg;

pub use data::{
    cpu_series, mode_slug, percentile_label, percentile_x, spectrum, spectrum_series, Series,
    SpectrumPoint,
};
pub use svg::format_us;

use std::path::{Path, PathBuf};

use super::ScenarioReport;

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to draw (no successful requests, no CPU figures).
    #[error("no data to draw")]
    Empty,
    /// plotters failed to draw or write the file.
    #[error("drawing {path}: {message}")]
    Draw { path: String, message: String },
}

/// Writes `latency-spectrum-MODE.svg` per load and `cpu-per-request.svg` into `dir`;
/// returns the files written. A chart with nothing to draw is skipped.
pub fn write_charts(report: &ScenarioReport, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let targets: Vec<String> = report
        .runs
        .iter()
        .flat_map(|r| r.paths.iter().map(|p| p.path.clone()))
        .fold(Vec::new(), |mut names, name| {
            if !names.contains(&name) {
                names.push(name);
            }
            names
        });
    let body = if report.stream {
        "streamed chat"
    } else {
        "chat"
    };
    let mut written = Vec::new();
    for run in &report.runs {
        let series = spectrum_series(run);
        if series.is_empty() {
            continue;
        }
        let path = dir.join(format!("latency-spectrum-{}.svg", mode_slug(&run.mode)));
        let title = format!(
            "Latency by percentile, {}, {} B {body}",
            run.mode, report.body_bytes
        );
        svg::draw_spectrum(&path, &title, &series, &targets)?;
        written.push(path);
    }
    let series = cpu_series(report);
    if !series.is_empty() {
        let path = dir.join("cpu-per-request.svg");
        let title = format!(
            "Proxy CPU per request by offered rate, {} B {body}",
            report.body_bytes
        );
        svg::draw_cpu_by_rate(&path, &title, &series, &targets)?;
        written.push(path);
    }
    Ok(written)
}
