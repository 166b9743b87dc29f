//! The new process's side of a handoff: the listening sockets it inherited (from the process
//! it replaces, or from systemd socket activation) and the pipe on which it says it is ready.
//!
//! The old process names each descriptor in `INFERGATE_INHERITED_FDS` (`client:5,client:6,
//! admin:7`) and the readiness pipe in `INFERGATE_READY_FD`. systemd's convention
//! (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors from 3) is read too: a socket
//! named `admin` is the admin listener, any other a client one. Every descriptor is checked
//! (open, a listening TCP socket) before it is used; one that is not is logged and left alone.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The variable naming the inherited listening sockets.
pub const FDS_ENV: &str = "INFERGATE_INHERITED_FDS";
/// The variable naming the write end of the readiness pipe.
pub const READY_ENV: &str = "INFERGATE_READY_FD";

/// What a listening socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client (data plane) listener; one per shard.
    Client,
    /// The admin listener.
    Admin,
}

impl Role {
    /// The name used in `INFERGATE_INHERITED_FDS` and `LISTEN_FDNAMES`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    fn from_name(name: &str) -> Role {
        if name == "admin" {
            Role::Admin
        } else {
            Role::Client
        }
    }
}

/// Listening sockets this process was started with, not yet taken, and the readiness pipe.
#[derive(Default)]
pub struct Inherited {
    sockets: Vec<(Role, TcpListener)>,
    ready: Option<ReadyPipe>,
}

impl Inherited {
    /// Reads the process's environment. Descriptors that are not what they claim to be are
    /// logged and skipped; the process then binds its own sockets.
    pub fn from_env() -> Inherited {
        let own = std::env::var(FDS_ENV).ok();
        let systemd = systemd_fds(
            std::env::var("LISTEN_PID").ok().as_deref(),
            std::env::var("LISTEN_FDS").ok().as_deref(),
            std::env::var("LISTEN_FDNAMES").ok().as_deref(),
            std::process::id(),
        );
        let named = match own.as_deref() {
            Some(list) => parse_fd_list(list),
            None => Ok(systemd),
        };
        let named = named.unwrap_or_else(|e| {
            tracing::warn!(variable = FDS_ENV, error = %e, "inherited sockets ignored");
            Vec::new()
        });
        let mut sockets = Vec::new();
        for (role, fd) in named {
            match adopt_listener(fd) {
                Ok(l) => sockets.push((role, l)),
                Err(e) => {
                    tracing::warn!(fd, role = role.as_str(), error = %e, "inherited descriptor is not a listening TCP socket; ignored")
                }
            }
        }
        let ready = std::env::var(READY_ENV)
            .ok()
            .and_then(|v| match v.trim().parse::<RawFd>() {
                Ok(fd) => ReadyPipe::adopt(fd),
                Err(_) => {
                    tracing::warn!(variable = READY_ENV, value = %v, "not a descriptor number; ignored");
                    None
                }
            });
        if !sockets.is_empty() {
            tracing::info!(
                sockets = sockets.len(),
                "serving on inherited listening sockets"
            );
        }
        Inherited { sockets, ready }
    }

    /// Takes the inherited client sockets bound where `listen` says (any port when it says
    /// port 0). Client sockets bound elsewhere (the config's address changed) are closed,
    /// with a warning: connections queued on them are lost.
    pub fn take_clients(&mut self, listen: &str) -> Vec<TcpListener> {
        self.take(Role::Client, listen)
    }

    /// Takes the inherited admin socket, if it is bound where `listen` says.
    pub fn take_admin(&mut self, listen: &str) -> Option<TcpListener> {
        self.take(Role::Admin, listen).into_iter().next()
    }

    fn take(&mut self, role: Role, listen: &str) -> Vec<TcpListener> {
        let want: Option<SocketAddr> = listen.parse().ok();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(r, _)| *r == role);
        self.sockets = rest;
        let mut taken = Vec::new();
        for (_, l) in mine {
            let have = l.local_addr().ok();
            match (want, have) {
                (Some(w), Some(h)) if same_listener(w, h) => taken.push(l),
                _ => tracing::warn!(
                    role = role.as_str(),
                    inherited = ?have,
                    configured = listen,
                    "inherited socket does not match the configured address; closing it"
                ),
            }
        }
        taken
    }

    /// Tells the process that started this one that every listener is serving. Without a
    /// readiness pipe (not started by an upgrade) it does nothing.
    pub fn notify_ready(&mut self) {
        if let Some(pipe) = self.ready.take() {
            pipe.notify();
        }
    }
}

/// Whether a socket bound at `have` serves the configured address `want`.
fn same_listener(want: SocketAddr, have: SocketAddr) -> bool {
    want.ip() == have.ip() && (want.port() == 0 || want.port() == have.port())
}

/// Why a descriptor list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FdListError {
    /// An entry is not `NAME:FD`.
    #[error("entry {0:?} is not NAME:FD")]
    Entry(String),
    /// A descriptor number is 0, 1, 2 (stdio) or not a number.
    #[error("entry {0:?} does not name a descriptor above 2")]
    Descriptor(String),
}

/// Parses `client:5,client:6,admin:7`.
fn parse_fd_list(list: &str) -> Result<Vec<(Role, RawFd)>, FdListError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, fd) = entry
            .split_once(':')
            .ok_or_else(|| FdListError::Entry(entry.to_string()))?;
        let fd: RawFd = fd
            .trim()
            .parse()
            .ok()
            .filter(|&fd| fd > 2)
            .ok_or_else(|| FdListError::Descriptor(entry.to_string()))?;
        out.push((Role::from_name(name.trim()), fd));
    }
    Ok(out)
}

/// The sockets systemd passed (socket activation), when they are meant for this process.
fn systemd_fds(
    pid: Option<&str>,
    count: Option<&str>,
    names: Option<&str>,
    own_pid: u32,
) -> Vec<(Role, RawFd)> {
    /// systemd passes its sockets from descriptor 3 on (`SD_LISTEN_FDS_START`).
    const FIRST: RawFd = 3;
    /// More would be a broken environment, not a socket unit.
    const MOST: RawFd = 1024;
    if pid.and_then(|p| p.trim().parse::<u32>().ok()) != Some(own_pid) {
        return Vec::new();
    }
    let Some(count) = count
        .and_then(|c| c.trim().parse::<RawFd>().ok())
        .filter(|&c| c > 0 && c <= MOST)
    else {
        return Vec::new();
    };
    let mut names = names.unwrap_or("").split(':');
    (FIRST..FIRST + count)
        .map(|fd| (Role::from_name(names.next().unwrap_or("")), fd))
        .collect()
}

/// Checks that `fd` is an open, listening TCP socket and takes it over: close-on-exec again
/// (a later upgrade passes it on explicitly), non-blocking, owned.
fn adopt_listener(fd: RawFd) -> std::io::Result<TcpListener> {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let kind = sockopt(fd, libc::SO_TYPE)?;
    let listening = sockopt(fd, libc::SO_ACCEPTCONN)?;
    let family = sockopt(fd, libc::SO_DOMAIN)?;
    if kind != libc::SOCK_STREAM
        || listening != 1
        || (family != libc::AF_INET && family != libc::AF_INET6)
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a listening TCP socket",
        ));
    }
    // SAFETY: the descriptor is open and is a socket (checked above); nothing else in this
    // process owns it, since it was passed in and is adopted once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(&owned)?;
    let listener = TcpListener::from(owned);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn sockopt(fd: RawFd, name: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value)
}

fn set_cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFD on a descriptor this process owns.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The write end of the pipe the old process waits on.
struct ReadyPipe(std::fs::File);

impl ReadyPipe {
    fn adopt(fd: RawFd) -> Option<ReadyPipe> {
        // SAFETY: F_GETFD only reads flags. The descriptor must be a FIFO (the pipe).
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let ok = fd > 2
            && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
            && unsafe { libc::fstat(fd, &mut stat) } == 0
            && (stat.st_mode & libc::S_IFMT) == libc::S_IFIFO;
        if !ok {
            tracing::warn!(
                variable = READY_ENV,
                fd,
                "not a pipe; the readiness notice is not sent"
            );
            return None;
        }
        // SAFETY: an open pipe passed to this process for it alone, adopted once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = set_cloexec(&owned);
        Some(ReadyPipe(std::fs::File::from(owned)))
    }

    /// Writes the readiness line (`ready PID`); the pipe closes when this returns.
    fn notify(mut self) {
        if let Err(e) = writeln!(self.0, "ready {}", std::process::id()) {
            tracing::warn!(error = %e, "could not tell the old process this one is ready");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fd_list_names_each_descriptor() {
        let list = parse_fd_list("client:5, client:6,admin:7,").unwrap();
        assert_eq!(
            list,
            vec![(Role::Client, 5), (Role::Client, 6), (Role::Admin, 7)]
        );
        assert!(matches!(
            parse_fd_list("client5"),
            Err(FdListError::Entry(_))
        ));
        assert!(matches!(
            parse_fd_list("client:1"),
            Err(FdListError::Descriptor(_))
        ));
        assert!(matches!(
            parse_fd_list("admin:x"),
            Err(FdListError::Descriptor(_))
        ));
    }

    #[test]
    fn systemd_sockets_only_for_this_process() {
        let fds = systemd_fds(Some("42"), Some("3"), Some("web:web:admin"), 42);
        assert_eq!(
            fds,
            vec![(Role::Client, 3), (Role::Client, 4), (Role::Admin, 5)]
        );
        assert!(systemd_fds(Some("41"), Some("3"), None, 42).is_empty());
        assert!(systemd_fds(None, Some("3"), None, 42).is_empty());
        assert!(systemd_fds(Some("42"), Some("0"), None, 42).is_empty());
        assert!(systemd_fds(Some("42"), Some("99999"), None, 42).is_empty());
    }

    #[test]
    fn port_zero_matches_any_port_on_the_same_address() {
        let want: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(same_listener(want, "127.0.0.1:8080".parse().unwrap()));
        assert!(!same_listener(want, "0.0.0.0:8080".parse().unwrap()));
        let fixed: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(same_listener(fixed, "127.0.0.1:8080".parse().unwrap()));
        assert!(!same_listener(fixed, "127.0.0.1:8081".parse().unwrap()));
    }

    #[test]
    fn only_listening_tcp_sockets_are_adopted() {
        use std::os::fd::IntoRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let adopted = adopt_listener(listener.into_raw_fd()).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let fd = file.into_raw_fd();
        assert!(adopt_listener(fd).is_err());
        // SAFETY (test): the file's descriptor is still ours; close it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        let connected = std::net::TcpStream::connect(addr).unwrap();
        let fd = connected.into_raw_fd();
        assert!(adopt_listener(fd).is_err());
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}
