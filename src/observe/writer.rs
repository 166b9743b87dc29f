//! The log writer thread: shards hand records to a channel (a lock-free push, never a file
//! write or a wake-up on a shard) and one thread drains it every few milliseconds, serializing
//! records to a JSONL file with size-based rotation.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::record::RequestRecord;
use crate::config::LogConfig;

/// Where shards send records. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct RecordSink {
    tx: Option<Sender<RequestRecord>>,
}

impl RecordSink {
    /// A sink that drops records (log turned off).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Hands a record to the writer.
    pub fn send(&self, record: RequestRecord) {
        if let Some(tx) = &self.tx {
            if tx.send(record).is_err() {
                tracing::warn!("request log writer has stopped; record dropped");
            }
        }
    }
}

/// The writer thread's handle; joining it flushes everything sent before.
pub struct LogWriter {
    handle: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer for `cfg`; returns the sink shards use. A `path` of "" disables it.
    pub fn start(cfg: &LogConfig) -> std::io::Result<(Self, RecordSink)> {
        if cfg.path.is_empty() {
            return Ok((Self { handle: None }, RecordSink::disabled()));
        }
        let path = PathBuf::from(&cfg.path);
        let file = open(&path)?;
        let (tx, rx) = mpsc::channel();
        let max_bytes = cfg.max_bytes;
        let keep = cfg.keep;
        let handle = std::thread::Builder::new()
            .name("infergate-log".into())
            .spawn(move || run(rx, path, file, max_bytes, keep))?;
        Ok((
            Self {
                handle: Some(handle),
            },
            RecordSink { tx: Some(tx) },
        ))
    }

    /// Waits for the writer to drain (every sink must have been dropped first).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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

/// How often the writer drains the queue. Shards never wake the writer: a send is a lock-free
/// push, and the writer polls, so a busy shard pays no context switch per request.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

fn run(
    rx: Receiver<RequestRecord>,
    path: PathBuf,
    file: (BufWriter<File>, u64),
    max_bytes: u64,
    keep: usize,
) {
    let (mut out, mut size) = file;
    let mut line = Vec::with_capacity(1024);
    loop {
        let record = match rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => {
                let _ = out.flush();
                std::thread::sleep(DRAIN_EVERY);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        line.clear();
        if serde_json::to_writer(&mut line, &record).is_err() {
            continue;
        }
        line.push(b'\n');
        if max_bytes > 0 && size + line.len() as u64 > max_bytes && size > 0 {
            let _ = out.flush();
            rotate(&path, keep);
            match open(&path) {
                Ok((f, s)) => {
                    out = f;
                    size = s;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen request log; records are lost");
                    return;
                }
            }
        }
        if let Err(e) = out.write_all(&line) {
            tracing::error!(error = %e, "request log write failed");
        }
        size += line.len() as u64;
    }
    let _ = out.flush();
}

#[cfg(test)]
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

    #[test]
    fn writes_every_record_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let cfg = LogConfig {
            path: path.display().to_string(),
            max_bytes: 4096,
            keep: 2,
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
}
