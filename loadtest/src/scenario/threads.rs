//! Where a measured process spends its CPU, per thread: `/proc/PID/task/*/stat` (name and
//! utime+stime) and `/proc/PID/task/*/schedstat` (how often each thread was put on a CPU)
//! read before and after a measured window, grouped by thread name and divided by the
//! requests answered in it. A log writer or file watcher that polls shows up here as CPU
//! and wake-ups per request that do not fall with the load.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One thread's counters at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    /// Thread id.
    pub tid: u32,
    /// The thread's name (`comm`, at most 15 bytes, as the kernel keeps it).
    pub name: String,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Times the thread was put on a CPU (`schedstat`'s third field), when the kernel has it.
    pub runs: Option<u64>,
}

/// CPU counters of a set of processes (a gateway and, if asked, its descendants).
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    /// utime + stime of each whole process (threads that exited included), in clock ticks.
    pub process_ticks: u64,
    /// Every thread alive at the instant.
    pub threads: Vec<ThreadSample>,
}

/// CPU of the threads sharing one name over a measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    /// Thread name (`comm`), e.g. `infergate-shard-0`, `infergate-log`, `nginx`.
    pub name: String,
    /// How many threads had this name.
    pub threads: usize,
    /// Their CPU time (user + system) over the window, ms.
    pub cpu_ms: f64,
    /// That CPU time per successful request, µs.
    pub cpu_us_per_request: f64,
    /// Times they were put on a CPU (wake-ups and preemptions) per request; None when
    /// the kernel has no `schedstat`.
    pub runs_per_request: Option<f64>,
}

/// Parses a `/proc/.../stat` line: (name, utime + stime in ticks, parent pid).
/// The name sits in parentheses and may itself hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<(String, u64, u32)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    // Fields after the name start at field 3 (state): ppid is field 4, utime 14, stime 15.
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let ppid: u32 = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime, ppid))
}

/// Parses `schedstat` (`run_ns wait_ns runs`): the number of times put on a CPU.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().nth(2)?.parse().ok()
}

/// The clock tick length (`_SC_CLK_TCK`, 10 ms on most kernels).
pub fn tick() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100);
    Duration::from_nanos(1_000_000_000 / per_second)
}

/// The live descendants of `pid` (children, their children, ...), from `/proc/*/stat`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parent_of = HashMap::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((_, _, ppid)) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            parent_of.insert(child, ppid);
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (&child, &ppid) in &parent_of {
            if ppid == parent && child != pid && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found.sort_unstable();
    found
}

/// Reads the counters of `pids` and all their threads; None when the first pid is gone.
pub fn snapshot(pids: &[u32]) -> Option<CpuSnapshot> {
    pids.first()?;
    let mut snap = CpuSnapshot::default();
    for (i, pid) in pids.iter().enumerate() {
        let whole = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat);
        let Some((_, ticks, _)) = whole else {
            if i == 0 {
                return None;
            }
            // A descendant that exited since it was listed.
            continue;
        };
        snap.process_ticks += ticks;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Some((name, ticks, _)) = std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(parse_stat)
            else {
                continue;
            };
            let runs = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .as_deref()
                .and_then(parse_schedstat);
            snap.threads.push(ThreadSample {
                tid,
                name,
                ticks,
                runs,
            });
        }
    }
    Some(snap)
}

/// CPU per thread name between two snapshots, per request, busiest first. A thread that
/// started during the window counts from zero; one that ended during it is missing (its
/// time is still in the process total).
pub fn breakdown(
    before: &CpuSnapshot,
    after: &CpuSnapshot,
    requests: u64,
    tick: Duration,
) -> Vec<ThreadCpu> {
    let earlier: HashMap<u32, &ThreadSample> = before.threads.iter().map(|t| (t.tid, t)).collect();
    // name -> (threads, ticks, runs, every thread had runs)
    let mut by_name: BTreeMap<&str, (usize, u64, u64, bool)> = BTreeMap::new();
    for thread in &after.threads {
        let (ticks, runs) = match earlier.get(&thread.tid) {
            // The same tid with another name was reused by a new thread: count it whole.
            Some(old) if old.name == thread.name => (
                thread.ticks.saturating_sub(old.ticks),
                thread.runs.zip(old.runs).map(|(a, b)| a.saturating_sub(b)),
            ),
            _ => (thread.ticks, thread.runs),
        };
        let entry = by_name.entry(&thread.name).or_insert((0, 0, 0, true));
        entry.0 += 1;
        entry.1 += ticks;
        match runs {
            Some(r) => entry.2 += r,
            None => entry.3 = false,
        }
    }
    let per = requests.max(1) as f64;
    let tick_us = tick.as_nanos() as f64 / 1000.0;
    let mut rows: Vec<ThreadCpu> = by_name
        .into_iter()
        .map(|(name, (threads, ticks, runs, has_runs))| ThreadCpu {
            name: name.to_string(),
            threads,
            cpu_ms: ticks as f64 * tick_us / 1000.0,
            cpu_us_per_request: ticks as f64 * tick_us / per,
            runs_per_request: has_runs.then(|| runs as f64 / per),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.cpu_us_per_request
            .total_cmp(&a.cpu_us_per_request)
            .then_with(|| {
                b.runs_per_request
                    .unwrap_or(0.0)
                    .total_cmp(&a.runs_per_request.unwrap_or(0.0))
            })
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line =
            "4242 (we (ird) name) S 17 4242 4242 0 -1 4194560 300 0 0 0 25 7 0 0 20 0 3 0 99 0 0";
        let (name, ticks, ppid) = parse_stat(line).unwrap();
        assert_eq!(name, "we (ird) name");
        assert_eq!(ticks, 32);
        assert_eq!(ppid, 17);
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_schedstat("123 456 789\n"), Some(789));
        assert_eq!(parse_schedstat("123"), None);
    }

    fn thread(tid: u32, name: &str, ticks: u64, runs: u64) -> ThreadSample {
        ThreadSample {
            tid,
            name: name.into(),
            ticks,
            runs: Some(runs),
        }
    }

    #[test]
    fn groups_threads_by_name_per_request() {
        let before = CpuSnapshot {
            process_ticks: 0,
            threads: vec![
                thread(1, "shard-0", 100, 1000),
                thread(2, "worker", 10, 50),
                thread(3, "worker", 20, 60),
                thread(4, "gone", 5, 5),
                thread(5, "old-name", 40, 40),
            ],
        };
        let after = CpuSnapshot {
            process_ticks: 0,
            threads: vec![
                thread(1, "shard-0", 300, 3000),
                thread(2, "worker", 11, 60),
                thread(3, "worker", 22, 70),
                // Started in the window: counted whole.
                thread(6, "new", 4, 8),
                // A reused tid under another name: counted whole, not as a difference.
                thread(5, "reused", 3, 3),
            ],
        };
        let rows = breakdown(&before, &after, 1000, Duration::from_millis(10));
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        // Equal CPU: more runs first (worker), then by name.
        assert_eq!(names, ["shard-0", "new", "worker", "reused"]);
        // 200 ticks of 10 ms over 1000 requests: 2000 µs per request, 2 runs per request.
        assert_eq!(rows[0].cpu_us_per_request, 2000.0);
        assert_eq!(rows[0].cpu_ms, 2000.0);
        assert_eq!(rows[0].runs_per_request, Some(2.0));
        assert_eq!(rows[1].cpu_us_per_request, 40.0);
        assert_eq!(rows[3].cpu_us_per_request, 30.0);
        assert_eq!(rows[3].runs_per_request, Some(0.003));
        let worker = &rows[2];
        assert_eq!(worker.threads, 2);
        assert_eq!(worker.cpu_us_per_request, 30.0);
        assert_eq!(worker.runs_per_request, Some(0.02));
    }

    #[test]
    fn runs_are_unknown_without_schedstat() {
        let mut t = thread(1, "a", 0, 0);
        t.runs = None;
        let before = CpuSnapshot {
            process_ticks: 0,
            threads: vec![t.clone()],
        };
        let rows = breakdown(&before, &before, 10, Duration::from_millis(10));
        assert_eq!(rows[0].runs_per_request, None);
        assert_eq!(rows[0].cpu_us_per_request, 0.0);
    }

    #[test]
    fn reads_this_process_and_its_threads() {
        let pid = std::process::id();
        let snap = snapshot(&[pid]).unwrap();
        assert!(snap.threads.iter().any(|t| t.tid == pid));
        assert!(snapshot(&[u32::MAX]).is_none());
        assert!(snapshot(&[]).is_none());
    }

    #[test]
    fn finds_a_child_as_a_descendant() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }
}
