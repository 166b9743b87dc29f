//! The old process's side of a handoff: start the binary found at the launch path again,
//! pass it every listening socket, and wait until it says it serves.
//!
//! The sockets are passed as they are (the same kernel sockets, not new ones bound to the same
//! port): connections already queued on a shard's SO_REUSEPORT socket stay queued and the new
//! process accepts them. Binding fresh SO_REUSEPORT sockets instead would lose them: when the
//! old process closed its sockets, the connections in their accept queues would be reset.

use std::io::Read as _;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::inherit::{Role, FDS_ENV, READY_ENV};
use super::launch::Launch;

/// Why an upgrade did not happen. In every case this process keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Another upgrade is under way, or this process already handed over.
    #[error("an upgrade is already under way, or this process already handed over")]
    Busy,
    /// The listeners are not all up yet (the process is still starting).
    #[error("the process is still starting; nothing to hand over yet")]
    NotReady,
    /// The readiness pipe could not be made, or a socket could not be passed.
    #[error("preparing the handoff: {0}")]
    Prepare(std::io::Error),
    /// The new binary could not be started.
    #[error("could not start {path}: {source}")]
    Spawn {
        /// The launch path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The new process ended (or closed the pipe) before it said it was ready.
    #[error("the new process (pid {pid}) exited before it was ready: {status}")]
    Exited {
        /// Its process id.
        pid: u32,
        /// How it ended.
        status: String,
    },
    /// The new process did not say it was ready in time; it was killed.
    #[error("the new process (pid {pid}) was not ready within {waited:?}; it was killed")]
    Timeout {
        /// Its process id.
        pid: u32,
        /// How long it was given.
        waited: Duration,
    },
    /// Reading the readiness pipe failed; the new process was killed.
    #[error("reading the new process's readiness: {0}; it was killed")]
    Pipe(std::io::Error),
}

/// Hands the listening sockets to a new process on request (SIGUSR2, `infergate upgrade`).
pub struct Upgrader {
    launch: Launch,
    ready_timeout: Duration,
    /// Duplicates of the listening sockets, kept to pass on: the shards' own are closed when
    /// they stop accepting.
    sockets: Mutex<Vec<(Role, OwnedFd)>>,
    /// True while an upgrade runs, and for good once one succeeded.
    busy: AtomicBool,
}

impl Upgrader {
    /// An upgrader that will start `launch` and wait `ready_timeout` for it.
    pub fn new(launch: Launch, ready_timeout: Duration) -> Upgrader {
        Upgrader {
            launch,
            ready_timeout,
            sockets: Mutex::new(Vec::new()),
            busy: AtomicBool::new(false),
        }
    }

    /// Keeps a listening socket (a duplicate of one being served) to pass on.
    pub fn keep(&self, role: Role, listener: TcpListener) {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((role, OwnedFd::from(listener)));
    }

    /// Closes the kept duplicates: the process is stopping without a handoff, and its
    /// listening sockets must close with the shards' (new connections are refused, not
    /// queued where nobody accepts them).
    pub fn release(&self) {
        self.busy.store(true, Ordering::Release);
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Starts the new process with the sockets and waits until it serves. On success the
    /// caller drains this process; on failure this process serves on, and the error says why.
    /// Returns the new process's id.
    pub fn upgrade(&self) -> Result<u32, UpgradeError> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(UpgradeError::Busy);
        }
        let result = self.hand_over();
        match &result {
            Ok(_) => self.release(),
            Err(_) => self.busy.store(false, Ordering::Release),
        }
        result
    }

    fn hand_over(&self) -> Result<u32, UpgradeError> {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if !sockets.iter().any(|(r, _)| *r == Role::Client) {
            return Err(UpgradeError::NotReady);
        }
        let (ready_read, ready_write) = pipe().map_err(UpgradeError::Prepare)?;
        let names: Vec<String> = sockets
            .iter()
            .map(|(role, fd)| format!("{}:{}", role.as_str(), fd.as_raw_fd()))
            .collect();
        let mut passed: Vec<RawFd> = sockets.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        passed.push(ready_write.as_raw_fd());
        let mut cmd = Command::new(&self.launch.exe);
        cmd.arg0(&self.launch.arg0)
            .args(&self.launch.args)
            .env(FDS_ENV, names.join(","))
            .env(READY_ENV, ready_write.as_raw_fd().to_string())
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES");
        if let Some(dir) = &self.launch.cwd {
            cmd.current_dir(dir);
        }
        // SAFETY: runs in the forked child before exec; fcntl is async-signal-safe and the
        // closure only reads a vector allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &passed {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = spawn_retrying_busy(&mut cmd).map_err(|source| UpgradeError::Spawn {
            path: self.launch.exe.display().to_string(),
            source,
        })?;
        drop(sockets);
        // Only the child may hold the write end now, so its exit is EOF here.
        drop(ready_write);
        let pid = child.id();
        tracing::info!(pid, exe = %self.launch.exe.display(), "upgrade: new process started; waiting until it serves");
        wait_ready(child, ready_read, self.ready_timeout)
    }
}

/// Starts `cmd`, trying again for a second while the binary is still open for writing
/// somewhere (ETXTBSY: an installer finishing, or any process forked while it was written).
fn spawn_retrying_busy(cmd: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Reads the readiness line from the pipe, up to `limit`. The child is killed when it is
/// not ready in time and reaped when it ended.
fn wait_ready(mut child: Child, pipe: OwnedFd, limit: Duration) -> Result<u32, UpgradeError> {
    let pid = child.id();
    let deadline = Instant::now() + limit;
    let mut pipe = std::fs::File::from(pipe);
    let mut line = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill(&mut child);
            return Err(UpgradeError::Timeout { pid, waited: limit });
        }
        match poll_readable(&pipe, left) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                kill(&mut child);
                return Err(UpgradeError::Pipe(e));
            }
        }
        let n = match pipe.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                kill(&mut child);
                return Err(UpgradeError::Pipe(e));
            }
        };
        if n == 0 {
            let status = exit_status(&mut child);
            return Err(UpgradeError::Exited { pid, status });
        }
        line.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if line.len() > 256 {
            kill(&mut child);
            return Err(UpgradeError::Pipe(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "readiness line too long",
            )));
        }
        if line.contains(&b'\n') {
            if line.starts_with(format!("ready {pid}\n").as_bytes()) {
                return Ok(pid);
            }
            kill(&mut child);
            return Err(UpgradeError::Pipe(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "unexpected readiness line {:?}",
                    String::from_utf8_lossy(&line)
                ),
            )));
        }
    }
}

/// How a child that closed its readiness pipe ended (it may still be exiting: wait briefly).
fn exit_status(child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return describe(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                kill(child);
                return "it closed the readiness pipe without a word; killed".to_string();
            }
            Err(e) => return format!("status unknown ({e})"),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A pipe whose ends close on exec (the write end is opened to the child in `pre_exec`).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd as _;
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read, write] = fds;
    // SAFETY: both were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(read), OwnedFd::from_raw_fd(write)) })
}

/// Waits until `file` is readable (data or EOF), up to `limit`; false when the time ran out.
fn poll_readable(file: &std::fs::File, limit: Duration) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn script(dir: &std::path::Path, body: &str) -> Launch {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("new-binary");
        std::fs::write(&exe, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        Launch {
            exe: exe.clone(),
            arg0: exe.into_os_string(),
            args: Vec::new(),
            cwd: None,
        }
    }

    fn upgrader(launch: Launch, timeout: Duration) -> (Upgrader, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let u = Upgrader::new(launch, timeout);
        u.keep(Role::Client, listener.try_clone().unwrap());
        (u, listener)
    }

    #[test]
    fn a_child_that_exits_is_reported_and_another_try_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (u, _l) = upgrader(script(dir.path(), "exit 3"), Duration::from_secs(10));
        match u.upgrade() {
            Err(UpgradeError::Exited { status, .. }) => assert_eq!(status, "exit status 3"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(u.upgrade(), Err(UpgradeError::Exited { .. })));
    }

    #[test]
    fn a_child_that_never_says_ready_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let (u, _l) = upgrader(script(dir.path(), "sleep 30"), Duration::from_millis(300));
        let start = Instant::now();
        assert!(matches!(u.upgrade(), Err(UpgradeError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_child_gets_the_sockets_and_the_pipe() {
        let dir = tempfile::tempdir().unwrap();
        // The script checks that each named descriptor is open in it, then says ready. It
        // writes through /proc: dash's `>&N` takes one digit only, and with other tests
        // running in this process the pipe's descriptor can be 10 or more.
        let body = r#"
for entry in $(echo "$INFERGATE_INHERITED_FDS" | tr ',' ' '); do
  fd=${entry#*:}
  [ -e /proc/self/fd/$fd ] || exit 9
done
echo ready $$ > /proc/self/fd/$INFERGATE_READY_FD
"#;
        let (u, _l) = upgrader(script(dir.path(), body), Duration::from_secs(10));
        let pid = u.upgrade().unwrap();
        assert!(pid > 0);
        // Handed over: no second upgrade from this process.
        assert!(matches!(u.upgrade(), Err(UpgradeError::Busy)));
    }

    #[test]
    fn nothing_to_hand_over_before_the_shards_listen() {
        let dir = tempfile::tempdir().unwrap();
        let u = Upgrader::new(script(dir.path(), "exit 0"), Duration::from_secs(1));
        assert!(matches!(u.upgrade(), Err(UpgradeError::NotReady)));
    }
}
