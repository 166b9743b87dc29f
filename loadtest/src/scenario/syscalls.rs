//! Syscalls per request: a counter attached to a gateway's process for one load window,
//! then detached. `perf stat` counts every `syscalls:sys_enter_*` tracepoint (cheap, in
//! the kernel); `strace -c -f` is the fallback where perf's tracepoints are not available
//! (ptrace stops the process at each call, so it slows it down a lot). Either way this
//! pass is separate from the latency measurements.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Which counter to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyscallTool {
    /// perf where it can count syscall tracepoints, else strace.
    Auto,
    /// `perf stat -e 'syscalls:sys_enter_*'`.
    Perf,
    /// `strace -c -f`.
    Strace,
}

/// Why syscalls could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum SyscallError {
    /// Neither tool works here.
    #[error("cannot count syscalls: {0}")]
    Unavailable(String),
    /// The tool failed to start or to report.
    #[error("{tool}: {message}")]
    Tool { tool: &'static str, message: String },
}

/// Calls of one syscall per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyscallCount {
    /// Syscall name, e.g. `io_uring_enter`, `write`, `epoll_wait`.
    pub name: String,
    /// Calls in the window.
    pub calls: u64,
    /// Calls per successful request.
    pub per_request: f64,
}

/// One target's syscalls over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathSyscalls {
    /// The target's name.
    pub path: String,
    /// Successful requests in the window.
    pub requests: u64,
    /// All syscalls per request.
    pub total_per_request: f64,
    /// `io_uring_enter` calls per request (0 for a process that does not use io_uring).
    pub io_uring_enter_per_request: f64,
    /// The ten most frequent, most first.
    pub top: Vec<SyscallCount>,
}

/// The syscall pass of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyscallReport {
    /// `perf` or `strace`.
    pub tool: String,
    /// The load: `open-loop R req/s for D s`.
    pub mode: String,
    /// One entry per target with a process.
    pub paths: Vec<PathSyscalls>,
}

/// Per-name counts into the per-request summary (top ten, io_uring_enter apart).
pub fn summarize(path: &str, counts: &[(String, u64)], requests: u64) -> PathSyscalls {
    let per = requests.max(1) as f64;
    let mut sorted: Vec<&(String, u64)> = counts.iter().filter(|(_, n)| *n > 0).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: u64 = sorted.iter().map(|(_, n)| n).sum();
    let io_uring: u64 = counts
        .iter()
        .filter(|(name, _)| name == "io_uring_enter")
        .map(|(_, n)| n)
        .sum();
    PathSyscalls {
        path: path.to_string(),
        requests,
        total_per_request: total as f64 / per,
        io_uring_enter_per_request: io_uring as f64 / per,
        top: sorted
            .into_iter()
            .take(10)
            .map(|(name, calls)| SyscallCount {
                name: name.clone(),
                calls: *calls,
                per_request: *calls as f64 / per,
            })
            .collect(),
    }
}

/// Parses `perf stat -x,` output: `COUNT,UNIT,syscalls:sys_enter_NAME,...` lines; events
/// that were not counted and other events are skipped.
pub fn parse_perf(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let count: u64 = fields.next()?.trim().parse().ok()?;
            let event = fields.nth(1)?.trim();
            let name = event.strip_prefix("syscalls:sys_enter_")?;
            Some((name.to_string(), count))
        })
        .collect()
}

/// Parses the table `strace -c` prints (`% time  seconds  usecs/call  calls  errors
/// syscall`, the errors column blank when zero).
pub fn parse_strace(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !(5..=6).contains(&fields.len()) {
                return None;
            }
            let name = *fields.last()?;
            if name == "total" || name == "syscall" {
                return None;
            }
            // % time and seconds are decimals; calls is the fourth column.
            fields.first()?.parse::<f64>().ok()?;
            let calls: u64 = fields.get(3)?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// A counter running against some processes until stopped.
pub struct Counter {
    tool: &'static str,
    child: Child,
    output: PathBuf,
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tool `choice` resolves to here, checked by running it once on `true`.
pub fn resolve(choice: SyscallTool) -> Result<SyscallTool, SyscallError> {
    let perf = || {
        // Hardware counters are often missing in VMs; the syscall tracepoints are enough.
        works(
            "perf",
            &["stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"],
        )
    };
    let strace = || works("strace", &["-c", "-o", "/dev/null", "true"]);
    match choice {
        SyscallTool::Perf if perf() => Ok(SyscallTool::Perf),
        SyscallTool::Strace if strace() => Ok(SyscallTool::Strace),
        SyscallTool::Auto if perf() => Ok(SyscallTool::Perf),
        SyscallTool::Auto if strace() => Ok(SyscallTool::Strace),
        other => Err(SyscallError::Unavailable(format!(
            "{other:?}: perf cannot count syscall tracepoints here and strace does not run \
             (apt-get install linux-perf strace)"
        ))),
    }
}

impl Counter {
    /// Attaches `tool` (resolved, not Auto) to `pids` and all their threads, writing to a
    /// file in `dir`; counts until [`Counter::stop`].
    pub fn start(tool: SyscallTool, pids: &[u32], dir: &Path) -> Result<Self, SyscallError> {
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let (name, output, args): (&'static str, PathBuf, Vec<String>) = match tool {
            SyscallTool::Perf => {
                let output = dir.join("perf-stat.csv");
                let args = vec![
                    "stat".into(),
                    "-x,".into(),
                    "-o".into(),
                    output.display().to_string(),
                    "-e".into(),
                    "syscalls:sys_enter_*".into(),
                    "-p".into(),
                    list.join(","),
                ];
                ("perf", output, args)
            }
            SyscallTool::Strace | SyscallTool::Auto => {
                let output = dir.join("strace-c.txt");
                let mut args = vec![
                    "-c".into(),
                    "-f".into(),
                    "-o".into(),
                    output.display().to_string(),
                ];
                for pid in &list {
                    args.push("-p".into());
                    args.push(pid.clone());
                }
                ("strace", output, args)
            }
        };
        let _ = std::fs::remove_file(&output);
        let child = Command::new(name)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| SyscallError::Tool {
                tool: name,
                message: format!("cannot start: {e}"),
            })?;
        // Both attach within a few ms; give them time before the load starts.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self {
            tool: name,
            child,
            output,
        })
    }

    /// Detaches (SIGINT, as a person would press Ctrl-C) and returns the per-name counts.
    pub fn stop(mut self) -> Result<Vec<(String, u64)>, SyscallError> {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(SyscallError::Tool {
                        tool: self.tool,
                        message: "did not detach within 20 s".into(),
                    });
                }
            }
        }
        let text = std::fs::read_to_string(&self.output).map_err(|e| SyscallError::Tool {
            tool: self.tool,
            message: format!("no report at {}: {e}", self.output.display()),
        })?;
        let counts = if self.tool == "perf" {
            parse_perf(&text)
        } else {
            parse_strace(&text)
        };
        if counts.is_empty() {
            return Err(SyscallError::Tool {
                tool: self.tool,
                message: format!("nothing counted; its report:\n{text}"),
            });
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_perf_csv() {
        let text = "# started on Tue Dec  8 01:30:00 2026\n\n\
            3012,,syscalls:sys_enter_io_uring_enter,5001234,100.00,,\n\
            0,,syscalls:sys_enter_read,5001234,100.00,,\n\
            <not counted>,,syscalls:sys_enter_write,0,0.00,,\n\
            17,,raw_syscalls:sys_enter,5001234,100.00,,\n\
            40,,syscalls:sys_enter_futex,5001234,100.00,,\n";
        assert_eq!(
            parse_perf(text),
            vec![
                ("io_uring_enter".to_string(), 3012),
                ("read".to_string(), 0),
                ("futex".to_string(), 40)
            ]
        );
    }

    #[test]
    fn reads_strace_tables() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
             61.20    0.012000          12      1000           io_uring_enter\n\
             30.00    0.006000           6      1000       200 read\n\
              0.00    0.000000           0         1           rseq\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.018000           9      2001       200 total\n";
        assert_eq!(
            parse_strace(text),
            vec![
                ("io_uring_enter".to_string(), 1000),
                ("read".to_string(), 1000),
                ("rseq".to_string(), 1)
            ]
        );
    }

    #[test]
    fn summary_is_per_request_with_io_uring_apart() {
        let mut counts: Vec<(String, u64)> =
            (0..12).map(|i| (format!("call{i:02}"), 100 + i)).collect();
        counts.push(("io_uring_enter".into(), 50));
        counts.push(("never".into(), 0));
        let s = summarize("infergate", &counts, 100);
        assert_eq!(s.requests, 100);
        assert_eq!(s.top.len(), 10);
        assert_eq!(s.top[0].name, "call11");
        assert_eq!(s.top[0].per_request, 1.11);
        assert!(s.top.iter().all(|c| c.name != "io_uring_enter"));
        assert_eq!(s.io_uring_enter_per_request, 0.5);
        let total: u64 = (0..12).map(|i| 100 + i).sum::<u64>() + 50;
        assert_eq!(s.total_per_request, total as f64 / 100.0);
    }
}
