//! `scenario --out DIR`: the report as JSON and as text, and its charts as SVG, side by side.

use std::path::{Path, PathBuf};

use super::{plot, ScenarioReport};

/// Why the output directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Creating the directory or writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The report could not be serialized.
    #[error("report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

/// Writes `report.json`, `report.txt` and the charts into `dir` (created if missing);
/// returns every file written.
pub fn write_out(report: &ScenarioReport, dir: &Path) -> Result<Vec<PathBuf>, OutputError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| OutputError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?).map_err(io(&json))?;
    let text = dir.join("report.txt");
    std::fs::write(&text, report.to_string()).map_err(io(&text))?;
    let mut written = vec![json, text];
    written.extend(plot::write_charts(report, dir)?);
    Ok(written)
}
