//! The systemd notification protocol (`sd_notify(3)`): `READY=1` once every shard listens,
//! `WATCHDOG=1` while the shards are alive, `STOPPING=1` when the drain begins.
//!
//! A notification is one datagram of `KEY=VALUE` lines to the unix socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). The `sd-notify` crate
//! does not reach abstract sockets, which containers and newer systemd use, so the send is
//! done here; it is a dozen lines.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use super::probes::{pulse_problem, Probes};
use crate::shard::Pulse;

/// Sends one notification (`lines` joined by newlines) to `socket`.
pub fn send_to(socket: &OsStr, lines: &[&str]) -> std::io::Result<()> {
    let msg = lines.join("\n");
    let sock = UnixDatagram::unbound()?;
    match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(msg.as_bytes(), socket)?;
        }
    }
    Ok(())
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`), if it is meant for this
/// process (`WATCHDOG_PID` absent or ours) and not zero.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the notifier thread should send at one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// `STOPPING=1`: the drain began.
    Stopping,
    /// `WATCHDOG=1`: every shard is alive.
    Watchdog,
    /// No ping this time: a shard is not alive (the reason is logged). If it stays so for
    /// the whole `WatchdogSec`, systemd restarts the service.
    Withheld(String),
}

/// The notifier's schedule: a ping every half watchdog interval when the shards are alive,
/// and `STOPPING=1` once.
#[derive(Debug)]
pub struct Schedule {
    every: Option<Duration>,
    next_ping: Instant,
    stopping_sent: bool,
}

impl Schedule {
    /// Pings every half of `watchdog` (when set), the first one half an interval after `now`.
    pub fn new(watchdog: Option<Duration>, now: Instant) -> Self {
        let every = watchdog.map(|w| (w / 2).max(Duration::from_millis(1)));
        Self {
            every,
            next_ping: now + every.unwrap_or_default(),
            stopping_sent: false,
        }
    }

    /// What to send at `now`, given whether the drain began and the shards' pulse (read only
    /// when a ping is due).
    pub fn tick(
        &mut self,
        now: Instant,
        draining: bool,
        timeout: Duration,
        pulse: impl FnOnce() -> Pulse,
    ) -> Vec<Note> {
        let mut notes = Vec::new();
        if draining && !self.stopping_sent {
            self.stopping_sent = true;
            notes.push(Note::Stopping);
        }
        if let Some(every) = self.every {
            if now >= self.next_ping {
                // Skip missed slots instead of sending a burst after a stall.
                while self.next_ping <= now {
                    self.next_ping += every;
                }
                notes.push(match pulse_problem(&pulse(), timeout) {
                    None => Note::Watchdog,
                    Some(reason) => Note::Withheld(reason),
                });
            }
        }
        notes
    }

    /// How long the thread may sleep before the next thing could be due.
    pub fn sleep_for(&self, now: Instant) -> Duration {
        let until_ping = self
            .every
            .map_or(POLL, |_| self.next_ping.saturating_duration_since(now));
        until_ping.min(POLL)
    }
}

/// How often the notifier looks at the lifecycle for the drain.
const POLL: Duration = Duration::from_millis(100);

/// When the process runs under systemd (`NOTIFY_SOCKET` is set), says `READY=1` with a
/// status line, and starts the thread that pings the watchdog (when `WATCHDOG_USEC` asks for
/// it) and says `STOPPING=1` when the drain begins. Call it once every shard listens.
/// Returns whether a service manager is being told.
pub fn announce_ready(probes: Probes, status: &str) -> std::io::Result<bool> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let watchdog = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    send_to(&socket, &["READY=1", &format!("STATUS={status}")])?;
    tracing::info!(
        watchdog_ms = watchdog.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
        "told the service manager READY=1"
    );
    std::thread::Builder::new()
        .name("infergate-sd-notify".into())
        .spawn(move || run(&socket, &probes, watchdog))?;
    Ok(true)
}

fn run(socket: &OsStr, probes: &Probes, watchdog: Option<Duration>) {
    let timeout = probes.timeout();
    let mut schedule = Schedule::new(watchdog, Instant::now());
    let mut withholding = false;
    loop {
        let now = Instant::now();
        for note in schedule.tick(now, probes.draining(), timeout, || probes.pulse()) {
            let sent = match &note {
                Note::Stopping => send_to(socket, &["STOPPING=1", "STATUS=draining"]),
                Note::Watchdog => {
                    if withholding {
                        tracing::info!("every shard beats again; watchdog pings resume");
                        withholding = false;
                    }
                    send_to(socket, &["WATCHDOG=1"])
                }
                Note::Withheld(reason) => {
                    if !withholding {
                        tracing::error!(
                            reason = %reason,
                            "withholding the watchdog ping: systemd restarts the service if this lasts WatchdogSec"
                        );
                        withholding = true;
                    }
                    Ok(())
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, ?note, "could not notify the service manager");
            }
        }
        std::thread::sleep(schedule.sleep_for(Instant::now()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);
    const ALIVE: Pulse = Pulse::Alive {
        slowest: Duration::ZERO,
        stopped: 0,
    };

    #[test]
    fn the_watchdog_interval_is_for_this_process_only() {
        let d = Some(Duration::from_secs(10));
        assert_eq!(watchdog_interval(Some("10000000"), None, 7), d);
        assert_eq!(watchdog_interval(Some("10000000"), Some("7"), 7), d);
        assert_eq!(watchdog_interval(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn pings_every_half_interval_while_alive() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Some(Duration::from_secs(2)), t0);
        assert!(s.tick(t0, false, T, || ALIVE).is_empty());
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.tick(t1, false, T, || ALIVE), [Note::Watchdog]);
        assert!(s.tick(t1, false, T, || ALIVE).is_empty());
        // A stall of several intervals gives one ping, not a burst.
        let t5 = t0 + Duration::from_millis(5200);
        assert_eq!(s.tick(t5, false, T, || ALIVE), [Note::Watchdog]);
        assert_eq!(s.sleep_for(t5), Duration::from_millis(100));
    }

    #[test]
    fn a_silent_shard_withholds_the_ping() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Some(Duration::from_secs(2)), t0);
        let silent = Pulse::Silent {
            shard: 1,
            silent_for: Duration::from_secs(6),
        };
        let notes = s.tick(t0 + Duration::from_secs(1), false, T, || silent);
        assert!(
            matches!(&notes[..], [Note::Withheld(why)] if why.contains("shard 1")),
            "{notes:?}"
        );
    }

    #[test]
    fn stopping_is_said_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(None, t0);
        assert!(s.tick(t0, false, T, || ALIVE).is_empty());
        assert_eq!(s.tick(t0, true, T, || ALIVE), [Note::Stopping]);
        assert!(s.tick(t0, true, T, || ALIVE).is_empty());
    }

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), &["READY=1", "STATUS=x"]).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("infergate-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), &["WATCHDOG=1"]).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
