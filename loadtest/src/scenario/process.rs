//! Child processes of a scenario: started pinned, killed when dropped (or when the
//! scenario itself dies), with their stdout lines and CPU time observable.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why a child could not be started or observed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be executed.
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The expected stdout line did not come in time.
    #[error(
        "{name} did not print {expected:?} within {timeout:?}; end of its stderr:\n{stderr_tail}"
    )]
    NoReadyLine {
        name: String,
        expected: String,
        timeout: Duration,
        stderr_tail: String,
    },
    /// The port did not accept connections in time.
    #[error("{name} did not accept connections on {addr} within {timeout:?}")]
    NotListening {
        name: String,
        addr: String,
        timeout: Duration,
    },
}

/// A running child process; dropping it sends SIGTERM, then SIGKILL after a grace period.
pub struct ChildProcess {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr_path: String,
}

impl ChildProcess {
    /// Starts `program args` on `cpus` (empty: inherit), stdout captured line by line,
    /// stderr to `stderr_path`. The child gets SIGKILL if this process dies first.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        cpus: &[usize],
        stderr_path: &Path,
    ) -> Result<Self, ProcessError> {
        Self::spawn_with_env(name, program, args, &[], cpus, stderr_path)
    }

    /// [`ChildProcess::spawn`] with extra environment variables for the child.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        cpus: &[usize],
        stderr_path: &Path,
    ) -> Result<Self, ProcessError> {
        let spawn_error = |source| ProcessError::Spawn {
            name: name.to_string(),
            source,
        };
        let stderr = File::create(stderr_path).map_err(spawn_error)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        // Build the CPU mask here: pre_exec runs after fork, where allocating is unsafe.
        // SAFETY: cpu_set_t is plain data.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus.iter().filter(|c| **c < libc::CPU_SETSIZE as usize) {
            // SAFETY: bounds checked by the filter.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        let pin = !cpus.is_empty();
        // SAFETY: the closure only makes async-signal-safe syscalls.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if pin {
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(spawn_error)?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            // Drain stdout for the child's whole life so it never blocks on a full pipe.
            let _ = std::thread::Builder::new()
                .name(format!("{name}-stdout"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            // Nobody listens any more; keep draining.
                            continue;
                        }
                    }
                });
        }
        Ok(Self {
            name: name.to_string(),
            child,
            lines,
            stderr_path: stderr_path.display().to_string(),
        })
    }

    /// The last 2 KB of what the child wrote to stderr (for error messages).
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read(&self.stderr_path).unwrap_or_default();
        let start = text.len().saturating_sub(2048);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of the line.
    pub fn wait_for_line(&self, prefix: &str, timeout: Duration) -> Result<String, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(_) => {
                    return Err(ProcessError::NoReadyLine {
                        name: self.name.clone(),
                        expected: prefix.to_string(),
                        timeout,
                        stderr_tail: self.stderr_tail(),
                    })
                }
            }
        }
    }

    /// Waits until `addr` accepts TCP connections.
    pub fn wait_for_port(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<(), ProcessError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ProcessError::NotListening {
            name: self.name.clone(),
            addr: addr.to_string(),
            timeout,
        })
    }

    /// Whether the child has exited (it is reaped then).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// User + system CPU time the child has used so far (all its threads).
    pub fn cpu_time(&self) -> Option<Duration> {
        process_cpu_time(self.pid())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of `pid` from `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some(Duration::from_nanos(
        (utime + stime).saturating_mul(1_000_000_000 / ticks),
    ))
}

/// Finds `program` in the directories of `$PATH`.
pub fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A free TCP port on 127.0.0.1 (bound then released: another process could take it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_own_cpu_time() {
        let t = process_cpu_time(std::process::id()).unwrap();
        assert!(t < Duration::from_secs(3600));
    }
}
