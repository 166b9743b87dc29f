//! The log writer thread: shards hand records to a bounded queue (a lock-free push, never a
//! file write, a wait or a wake-up on a shard) and one thread drains it every few
//! milliseconds, serializing records to a JSONL file.
//!
//! When the queue is full (the disk is slower than the traffic) the record is dropped and
//! counted ([`RecordDrops`], exported as `infergate_records_dropped_total`): a shard never
//! waits for the log. The file is rotated by size (`PATH.1` is the newest old part, then
//! `PATH.2`, ...) and, with `[log] daily`, at UTC midnight to `PATH.YYYY-MM-DD` (the day
//! it holds, so the names sort by age).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::recent::RecordViews;
use super::record::{rfc3339_millis, unix_ms_now, RequestRecord};
use crate::config::LogConfig;

/// How many records were dropped because the writer's queue was full (or it had stopped).
/// Cheap to clone; all clones count the same drops.
#[derive(Clone, Debug, Default)]
pub struct RecordDrops(Arc<AtomicU64>);

impl RecordDrops {
    /// Records dropped since the start.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where shards send records. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct RecordSink {
    tx: Option<SyncSender<RequestRecord>>,
    drops: RecordDrops,
}

impl RecordSink {
    /// A sink that drops records (log turned off); nothing counts as a drop.
    pub fn disabled() -> Self {
        Self {
            tx: None,
            drops: RecordDrops::default(),
        }
    }

    /// A sink with a queue of `capacity` records, and the queue's other end.
    fn bounded(capacity: usize) -> (Self, Receiver<RequestRecord>) {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let sink = Self {
            tx: Some(tx),
            drops: RecordDrops::default(),
        };
        (sink, rx)
    }

    /// Hands a record to the writer; when its queue is full the record is dropped and
    /// counted (the writer thread logs how many, at most every few seconds).
    pub fn send(&self, record: RequestRecord) {
        if let Some(tx) = &self.tx {
            if let Err(e) = tx.try_send(record) {
                self.drops.add();
                if let TrySendError::Disconnected(_) = e {
                    tracing::warn!("request log writer has stopped; record dropped");
                }
            }
        }
    }

    /// The drop counter, for metrics.
    pub fn drops(&self) -> RecordDrops {
        self.drops.clone()
    }
}

/// The writer thread's handle; joining it flushes everything sent before.
pub struct LogWriter {
    handle: Option<JoinHandle<()>>,
    views: Option<Arc<RecordViews>>,
}

/// The time in seconds since the Unix epoch (a parameter so tests can move it).
type Clock = Box<dyn Fn() -> u64 + Send>;

fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LogWriter {
    /// Starts the writer for `cfg`; returns the sink shards use. A `path` of "" writes no
    /// file; with `recent = 0` as well, records are not kept at all.
    pub fn start(cfg: &LogConfig) -> std::io::Result<(Self, RecordSink)> {
        Self::start_with_clock(cfg, Box::new(system_clock))
    }

    fn start_with_clock(cfg: &LogConfig, clock: Clock) -> std::io::Result<(Self, RecordSink)> {
        let views = (cfg.recent > 0).then(|| RecordViews::new(cfg.recent));
        if cfg.path.is_empty() && views.is_none() {
            let off = Self {
                handle: None,
                views: None,
            };
            return Ok((off, RecordSink::disabled()));
        }
        let file = match cfg.path.is_empty() {
            true => None,
            false => Some(LogFile::open(cfg, clock)?),
        };
        let (sink, rx) = RecordSink::bounded(cfg.max_queue);
        let drops = sink.drops();
        let thread_views = views.clone();
        let handle = std::thread::Builder::new()
            .name("infergate-log".into())
            .spawn(move || run(rx, file, drops, thread_views))?;
        Ok((
            Self {
                handle: Some(handle),
                views,
            },
            sink,
        ))
    }

    /// The newest records and the usage ledger the writer keeps (for the admin API).
    pub fn views(&self) -> Option<Arc<RecordViews>> {
        self.views.clone()
    }

    /// Waits for the writer to drain (every sink must have been dropped first).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The open log file and when to rotate it.
struct LogFile {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    /// The UTC day (days since the epoch) the file's records belong to.
    day: u64,
    max_bytes: u64,
    keep: usize,
    /// `Some(keep_days)` with daily rotation.
    daily: Option<usize>,
    clock: Clock,
}

impl LogFile {
    fn open(cfg: &LogConfig, clock: Clock) -> std::io::Result<Self> {
        let path = PathBuf::from(&cfg.path);
        let (out, size) = open(&path)?;
        let today = clock() / 86_400;
        // A file left from an earlier day (the process was down at midnight) is that day's.
        let day = match std::fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(t) if size > 0 => t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(today, |d| d.as_secs() / 86_400),
            _ => today,
        };
        Ok(Self {
            path,
            out,
            size,
            day,
            max_bytes: cfg.max_bytes,
            keep: cfg.keep,
            daily: cfg.daily.then_some(cfg.keep_days),
            clock,
        })
    }

    /// Rotates at the day's end (with daily rotation), then makes room for `incoming` bytes
    /// under the size bound. Fails only when the file cannot be reopened.
    fn roll(&mut self, incoming: u64) -> std::io::Result<()> {
        if let Some(keep_days) = self.daily {
            let today = (self.clock)() / 86_400;
            if today != self.day {
                if self.size > 0 {
                    let _ = self.out.flush();
                    rotate_daily(&self.path, self.day);
                    self.reopen()?;
                }
                prune_days(&self.path, today, keep_days);
                self.day = today;
            }
        }
        if self.max_bytes > 0 && self.size + incoming > self.max_bytes && self.size > 0 {
            let _ = self.out.flush();
            rotate(&self.path, self.keep);
            self.reopen()?;
        }
        Ok(())
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        let (out, size) = open(&self.path)?;
        self.out = out;
        self.size = size;
        Ok(())
    }

    fn write(&mut self, line: &[u8]) {
        if let Err(e) = self.out.write_all(line) {
            tracing::error!(error = %e, "request log write failed");
        }
        self.size += line.len() as u64;
    }
}

fn open(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((BufWriter::with_capacity(64 * 1024, f), len))
}

fn rotate(path: &Path, keep: usize) {
    for i in (1..keep).rev() {
        let from = PathBuf::from(format!("{}.{}", path.display(), i));
        let to = PathBuf::from(format!("{}.{}", path.display(), i + 1));
        let _ = std::fs::rename(from, to);
    }
    if keep > 0 {
        let _ = std::fs::rename(path, format!("{}.1", path.display()));
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// `YYYY-MM-DD` of a day number.
fn date(day: u64) -> String {
    let stamp = rfc3339_millis(day.saturating_mul(86_400_000));
    stamp.get(..10).unwrap_or(&stamp).to_string()
}

/// Renames the log to `PATH.YYYY-MM-DD` (`-1`, `-2`, ... if that name is taken: a clock
/// that went back), so rotated names sort by age.
fn rotate_daily(path: &Path, day: u64) {
    let base = format!("{}.{}", path.display(), date(day));
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() && n < 1000 {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    if let Err(e) = std::fs::rename(path, &target) {
        tracing::error!(error = %e, to = %target.display(), "daily request log rotation failed");
    }
}

/// Deletes daily files of days more than `keep_days` before `today` (0 keeps them all).
fn prune_days(path: &Path, today: u64, keep_days: usize) {
    if keep_days == 0 {
        return;
    }
    let cutoff = date(today.saturating_sub(keep_days as u64));
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(day) = file.strip_prefix(&prefix).and_then(|rest| rest.get(..10)) else {
            continue;
        };
        let is_date = day.len() == 10
            && day.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if is_date && *day < *cutoff {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// How often the writer drains the queue. Shards never wake the writer: a send is a lock-free
/// push, and the writer polls, so a busy shard pays no context switch per request.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// How often at most the writer logs that records were dropped.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

fn run(
    rx: Receiver<RequestRecord>,
    mut file: Option<LogFile>,
    drops: RecordDrops,
    views: Option<Arc<RecordViews>>,
) {
    let mut line = Vec::with_capacity(1024);
    let mut reported = 0;
    let mut last_report = Instant::now();
    loop {
        let record = match rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => {
                if let Some(f) = file.as_mut() {
                    let _ = f.out.flush();
                    if let Err(e) = f.roll(0) {
                        tracing::error!(error = %e, "cannot reopen request log; records are lost");
                        return;
                    }
                }
                let dropped = drops.count();
                if dropped > reported && last_report.elapsed() >= DROP_LOG_EVERY {
                    tracing::warn!(
                        dropped = dropped - reported,
                        "request log queue full: records dropped (see infergate_records_dropped_total)"
                    );
                    reported = dropped;
                    last_report = Instant::now();
                }
                std::thread::sleep(DRAIN_EVERY);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        line.clear();
        if serde_json::to_writer(&mut line, &record).is_err() {
            continue;
        }
        if let (Some(v), Ok(text)) = (&views, std::str::from_utf8(&line)) {
            v.add(&record, text, unix_ms_now());
        }
        let Some(f) = file.as_mut() else {
            continue;
        };
        line.push(b'\n');
        if let Err(e) = f.roll(line.len() as u64) {
            tracing::error!(error = %e, "cannot reopen request log; records are lost");
            return;
        }
        f.write(&line);
    }
    if let Some(f) = file.as_mut() {
        let _ = f.out.flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn record(i: usize) -> RequestRecord {
        RequestRecord {
            status: 200,
            latency_ms: 1.0,
            time: String::new(),
            ..RequestRecord::started(format!("r{i}"), 0)
        }
    }

    fn config(path: &Path) -> LogConfig {
        LogConfig {
            path: path.display().to_string(),
            ..LogConfig::default()
        }
    }

    #[test]
    fn writes_every_record_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let cfg = LogConfig {
            max_bytes: 4096,
            keep: 2,
            ..config(&path)
        };
        let (writer, sink) = LogWriter::start(&cfg).unwrap();
        for i in 0..100 {
            sink.send(record(i));
        }
        drop(sink);
        writer.join();
        let mut lines = 0;
        for p in [
            path.clone(),
            dir.path().join("log.jsonl.1"),
            dir.path().join("log.jsonl.2"),
        ] {
            if let Ok(text) = std::fs::read_to_string(&p) {
                assert!(text.len() <= 4096, "{} is over the bound", p.display());
                lines += text.lines().count();
            }
        }
        // Rotation keeps the current file and two old ones: the newest records survive.
        assert!(lines > 0 && lines <= 100);
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("\"r99\""));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (sink, rx) = RecordSink::bounded(4);
        let started = Instant::now();
        for i in 0..10 {
            sink.send(record(i));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(sink.drops().count(), 6);
        // The first four are the ones queued.
        let kept: Vec<String> = rx.try_iter().map(|r| r.request_id).collect();
        assert_eq!(kept, ["r0", "r1", "r2", "r3"]);
        // A writer that stopped: every record is a drop.
        drop(rx);
        sink.send(record(10));
        assert_eq!(sink.clone().drops().count(), 7);
        // The log turned off drops nothing.
        let off = RecordSink::disabled();
        off.send(record(0));
        assert_eq!(off.drops().count(), 0);
    }

    fn wait_for(path: &Path, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "{needle} never reached {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn daily_rotation_names_the_file_by_its_day_and_prunes_old_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        // 2026-11-23, one second before midnight UTC.
        let day = 1_795_392_000 / 86_400;
        let now = Arc::new(AtomicU64::new(1_795_392_000 + 86_399));
        assert_eq!(date(day), "2026-11-23");
        // Old daily files: one past keep_days (deleted), one within (kept), and a
        // size-rotated part, which daily pruning leaves alone.
        for old in [
            "log.jsonl.2026-11-01",
            "log.jsonl.2026-11-22",
            "log.jsonl.1",
        ] {
            std::fs::write(dir.path().join(old), "{}\n").unwrap();
        }
        let cfg = LogConfig {
            daily: true,
            keep_days: 3,
            ..config(&path)
        };
        let clock = Arc::clone(&now);
        let (writer, sink) =
            LogWriter::start_with_clock(&cfg, Box::new(move || clock.load(Ordering::SeqCst)))
                .unwrap();
        sink.send(record(1));
        wait_for(&path, "\"r1\"");
        now.fetch_add(2, Ordering::SeqCst); // 00:00:01 the next day
        sink.send(record(2));
        drop(sink);
        writer.join();
        let yesterday = std::fs::read_to_string(dir.path().join("log.jsonl.2026-11-23")).unwrap();
        assert!(yesterday.contains("\"r1\"") && !yesterday.contains("\"r2\""));
        let today = std::fs::read_to_string(&path).unwrap();
        assert!(today.contains("\"r2\"") && !today.contains("\"r1\""));
        assert!(!dir.path().join("log.jsonl.2026-11-01").exists());
        assert!(dir.path().join("log.jsonl.2026-11-22").exists());
        assert!(dir.path().join("log.jsonl.1").exists());
        // Rotated names sort by age.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("log.jsonl.20"))
            .collect();
        names.sort();
        assert_eq!(names, ["log.jsonl.2026-11-22", "log.jsonl.2026-11-23"]);
    }

    #[test]
    fn a_taken_daily_name_gets_a_suffix_that_still_sorts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(dir.path().join("log.jsonl.1970-01-02"), "old\n").unwrap();
        std::fs::write(&path, "new\n").unwrap();
        rotate_daily(&path, 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log.jsonl.1970-01-02-1")).unwrap(),
            "new\n"
        );
        assert!("log.jsonl.1970-01-02-1" < "log.jsonl.1970-01-03");
    }
}
