//! `infergate logs`: which requests did what, from the request log files (rotated ones
//! included), filtered as `GET /admin/requests` filters, printed as a table or JSON lines.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::query::{FilterError, RecordFilter};

/// Arguments of `infergate logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Only this agent run.
    #[arg(long)]
    pub run: Option<String>,
    /// Only this gateway key (by name).
    #[arg(long)]
    pub key: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this alias or upstream model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this status (429) or class (5xx).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this request.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only requests since a time (2026-12-07T10:00:00Z), a date, or an age (15m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only failed requests.
    #[arg(long)]
    pub errors: bool,
    /// Print records as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Request log files (`[log] path`); their rotated files are read too.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Why `infergate logs` stopped.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// A filter value is wrong.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `infergate logs`.
pub fn run(args: &LogsArgs) -> Result<(), LogsError> {
    let filter = filter_of(args)?;
    let mut skipped = 0usize;
    let mut found: Vec<Value> = Vec::new();
    for path in with_rotated(&args.files) {
        let file = std::fs::File::open(&path).map_err(|source| LogsError::Read {
            path: path.clone(),
            source,
        })?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|source| LogsError::Read {
                path: path.clone(),
                source,
            })?;
            match serde_json::from_str::<Value>(&line) {
                Ok(r) if filter.matches(&r) => found.push(r),
                Ok(_) => {}
                Err(_) if line.trim().is_empty() => {}
                Err(_) => skipped += 1,
            }
        }
    }
    found.sort_by(|a, b| time_of(a).cmp(time_of(b)));
    let newest = found.len().saturating_sub(filter.limit_or(args.limit));
    let shown = found.get(newest..).unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = if args.json {
        shown.iter().try_for_each(|r| writeln!(out, "{r}"))
    } else {
        write_table(&mut out, shown)
    };
    if skipped > 0 {
        eprintln!("infergate logs: {skipped} line(s) that are not records were skipped");
    }
    Ok(())
}

fn filter_of(args: &LogsArgs) -> Result<RecordFilter, FilterError> {
    let now = super::record::unix_ms_now();
    let mut f = RecordFilter::default();
    let pairs = [
        ("run", &args.run),
        ("key", &args.key),
        ("tenant", &args.tenant),
        ("model", &args.model),
        ("status", &args.status),
        ("request_id", &args.request_id),
        ("since", &args.since),
    ];
    for (name, value) in pairs {
        if let Some(v) = value {
            f.set(name, v, now)?;
        }
    }
    f.errors = args.errors;
    f.set("limit", &args.limit.to_string(), now)?;
    Ok(f)
}

fn time_of(r: &Value) -> &str {
    r.get("time").and_then(Value::as_str).unwrap_or("")
}

/// Each file and the files it was rotated into (`PATH.1`, `PATH.2`, … by size;
/// `PATH.YYYY-MM-DD` by day), each once.
pub fn with_rotated(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = Vec::new();
    for file in files {
        let mut add = |p: PathBuf| {
            if !all.contains(&p) {
                all.push(p);
            }
        };
        add(file.clone());
        for sibling in rotated_siblings(file) {
            add(sibling);
        }
    }
    all
}

fn rotated_siblings(file: &Path) -> Vec<PathBuf> {
    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            let suffix = n.strip_prefix(&prefix)?;
            let rotated =
                suffix.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !suffix.is_empty();
            rotated.then(|| dir.join(n))
        })
        .collect();
    found.sort();
    found
}

fn write_table(out: &mut impl Write, records: &[Value]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:>6} {:<18} {:<24} {:>8} {:>8} {:>10} {:>9}  {:<24} REQUEST",
        "TIME", "STATUS", "MODEL", "ANSWERED BY", "IN", "OUT", "COST USD", "MS", "ERROR"
    )?;
    for r in records {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let n = |k: &str| {
            r.get(k)
                .and_then(Value::as_u64)
                .map_or("-".to_string(), |v| v.to_string())
        };
        let answered = match (
            r.get("provider").and_then(Value::as_str),
            r.get("upstream_model").and_then(Value::as_str),
        ) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
            _ => r
                .get("cache")
                .and_then(Value::as_str)
                .map_or("-".into(), |c| format!("cache:{c}")),
        };
        let cost = r
            .get("cost_usd")
            .and_then(Value::as_f64)
            .map_or("-".to_string(), |c| format!("{c:.6}"));
        let ms = r
            .get("latency_ms")
            .and_then(Value::as_f64)
            .map_or("-".to_string(), |v| format!("{v:.1}"));
        writeln!(
            out,
            "{:<24} {:>6} {:<18} {:<24} {:>8} {:>8} {:>10} {:>9}  {:<24} {}",
            s("time"),
            n("status"),
            s("model"),
            answered,
            n("tokens_in"),
            n("tokens_out"),
            cost,
            ms,
            s("error"),
            s("request_id"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_found_beside_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("requests.jsonl");
        for name in [
            "requests.jsonl",
            "requests.jsonl.1",
            "requests.jsonl.2026-12-06",
            "requests.jsonl.tmp",
            "other.jsonl.1",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let files = with_rotated(&[base.clone(), dir.path().join("requests.jsonl.1")]);
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "requests.jsonl",
                "requests.jsonl.1",
                "requests.jsonl.2026-12-06"
            ]
        );
    }
}
