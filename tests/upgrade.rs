//! Zero-downtime upgrade with the real binary: under a steady load of whole and streamed
//! requests on several keep-alive connections, the binary at the gateway's launch path is
//! replaced (a new inode) and `infergate upgrade --pidfile` sends SIGUSR2. No request fails, no
//! connection is refused, streams open across the handoff finish, the old process exits and the
//! new one serves. A new binary that cannot start leaves the old process serving, and says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn routed_to(upstream: &str) -> String {
    format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{upstream}"
forward_headers = ["x-mock-*"]

[models."gpt-4o-mini"]
targets = [{{ provider = "p", model = "model-a" }}]
"#
    )
}

/// A gateway started from a copy of the built binary, so the test can replace that copy.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
    exe: PathBuf,
    addr: String,
    admin: String,
}

impl Served {
    fn start(mock: &Mock, driver: Driver) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let exe = bin.join("infergate");
        install(env!("CARGO_BIN_EXE_infergate"), &exe);
        let pidfile = format!("\"{}\"", dir.path().join("infergate.pid").display());
        let config = Gateway::full_config_with(
            &routed_to(&mock.base_url()),
            dir.path(),
            &[("pidfile", &pidfile), ("upgrade_timeout_ms", "20000")],
        );
        let config_path = dir.path().join("infergate.toml");
        std::fs::write(&config_path, config).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(&exe);
        cmd.arg("--config")
            .arg(&config_path)
            .env("INFERGATE_LOG", "info,infergate=debug")
            .env("INFERGATE_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(stderr);
        match driver {
            Driver::Epoll => cmd.env("INFERGATE_DRIVER", "epoll"),
            Driver::Uring => cmd.env_remove("INFERGATE_DRIVER"),
        };
        let mut child = spawn_retrying_busy(&mut cmd);
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = address(&wait_for(&lines, "infergate listening on"));
        let admin = address(&wait_for(&lines, "admin listening on"));
        // The pidfile is written once everything listens, just after these lines.
        let pidfile = dir.path().join("infergate.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pidfile.exists() {
            assert!(Instant::now() < deadline, "no pidfile written");
            std::thread::sleep(Duration::from_millis(10));
        }
        Served {
            child,
            lines,
            dir,
            exe,
            addr,
            admin,
        }
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("infergate.pid")
    }

    fn pid_in_file(&self) -> u32 {
        std::fs::read_to_string(self.pidfile())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// `infergate upgrade --pidfile FILE`, run from the binary under test.
    fn upgrade_cli(&self, wait_secs: u32) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_infergate"))
            .arg("upgrade")
            .arg("--pidfile")
            .arg(self.pidfile())
            .args(["--wait-secs", &wait_secs.to_string()])
            .output()
            .unwrap()
    }

    fn health(&self) -> serde_json::Value {
        raw_request(
            &self.admin,
            &format!(
                "GET /admin/health HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                self.admin
            ),
        )
        .json()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a process this test did not spawn (the new gateway is the old one's child).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// Spawns `cmd`; tries again while the binary is busy (ETXTBSY: another test thread forked
/// while the copy was open for writing, and its child still holds it until it execs).
fn spawn_retrying_busy(cmd: &mut Command) -> Child {
    for _ in 0..40 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(25)),
            other => return other.unwrap(),
        }
    }
    panic!("{cmd:?} stayed busy");
}

/// Puts `src` at `dest` as a new file (a new inode, renamed over the old one, as a package
/// manager does): the running binary's file is never written to.
fn install(src: impl AsRef<Path>, dest: &Path) {
    let tmp = dest.with_extension("new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

fn wait_for(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => continue,
            Err(_) => panic!("no line starting with {prefix:?} in time"),
        }
    }
}

fn address(line: &str) -> String {
    let rest = line.split("://").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_string()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .next()
            .unwrap();
        state != "Z" && state != "X"
    })
}

/// What one client connection loop saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    streams_ok: usize,
    /// When each complete answer's request was sent and when its answer ended, and whether
    /// it was a stream.
    spans: Vec<(Instant, Instant, bool)>,
    failures: Vec<String>,
    connects: usize,
}

/// Reads one HTTP/1.1 response (content-length or chunked) from a keep-alive connection.
/// Returns the status, whether the server closes the connection, and the body.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(u16, bool, Vec<u8>), String> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .map_err(|e| format!("status line: {e}"))?;
    if n == 0 {
        return Err("connection closed before the response".into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| format!("header: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').ok_or("bad header")?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)
                .map_err(|e| format!("chunk size: {e}"))?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {line:?} after {} bytes", body.len()))?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)
                .map_err(|e| format!("chunk cut short after {} bytes: {e}", body.len()))?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let n = length.ok_or("neither content-length nor chunked")?;
        body.resize(n, 0);
        r.read_exact(&mut body)
            .map_err(|e| format!("body cut short: {e}"))?;
    }
    Ok((status, close, body))
}

/// One client: keep-alive requests back to back, whole and streamed in turn, reconnecting
/// when the server says `connection: close`, until `stop`.
fn client_loop(addr: String, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let stream = i % 2 == 0;
        if conn.is_none() {
            match TcpStream::connect(&addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                    t.connects += 1;
                    conn = Some(BufReader::new(s));
                }
                Err(e) => {
                    t.failures.push(format!("connect refused or failed: {e}"));
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let body = chat_body("gpt-4o-mini", stream);
        let extra = if stream {
            // Three seconds: streams open before the upgrade end well after the old process
            // began draining.
            "x-mock-tokens: 60\r\nx-mock-itl-ms: 50\r\n"
        } else {
            ""
        };
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        let began = Instant::now();
        if let Err(e) = c.get_mut().write_all(request.as_bytes()) {
            t.failures.push(format!("write: {e}"));
            conn = None;
            continue;
        }
        match read_response(c) {
            Ok((200, close, body)) => {
                let text = String::from_utf8_lossy(&body);
                let complete = if stream {
                    text.ends_with("data: [DONE]\n\n")
                } else {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .is_ok_and(|v| v["choices"][0]["message"]["content"].is_string())
                };
                if complete {
                    t.ok += 1;
                    t.streams_ok += usize::from(stream);
                    t.spans.push((began, Instant::now(), stream));
                } else {
                    t.failures.push(format!("incomplete answer: {text}"));
                }
                if close {
                    conn = None;
                }
            }
            Ok((status, _, body)) => {
                t.failures.push(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
                conn = None;
            }
            Err(e) => {
                t.failures.push(e);
                conn = None;
            }
        }
    }
    t
}

/// Runs `clients` loops until `stop`; returns their tallies.
fn start_load(
    addr: &str,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Tally>> {
    (0..clients)
        .map(|_| {
            let (addr, stop) = (addr.to_string(), Arc::clone(stop));
            std::thread::spawn(move || client_loop(addr, stop))
        })
        .collect()
}

both_drivers!(upgrade_under_load_drops_nothing, |d| {
    let mock = Mock::start(&[]);
    let mut old = Served::start(&mock, d);
    let old_pid = old.child.id();
    assert_eq!(old.pid_in_file(), old_pid);

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&old.addr, 4, &stop);
    std::thread::sleep(Duration::from_millis(500));

    // A new release lands at the launch path (a new inode), and the operator upgrades.
    install(env!("CARGO_BIN_EXE_infergate"), &old.exe);
    let asked = Instant::now();
    let out = old.upgrade_cli(30);
    assert!(
        out.status.success(),
        "upgrade command failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        old.stderr()
    );
    let handed_over = Instant::now();
    let new_pid = old.pid_in_file();
    let _cleanup = KillOnDrop(new_pid);
    assert_ne!(new_pid, old_pid);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("process {new_pid} serves")),
        "{out:?}"
    );
    // The new process announced itself on the same stdout.
    let line = wait_for(&old.lines, "infergate listening on");
    assert_eq!(
        address(&line),
        old.addr,
        "the new process listens elsewhere"
    );

    // The old process drains and exits on its own, cleanly.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = old.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "old process did not exit:\n{}",
            old.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "old process: {status:?}\n{}",
        old.stderr()
    );

    // The clients finish what they sent (to the new process by now) and stop.
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = load.into_iter().map(|h| h.join().unwrap()).collect();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    assert!(
        failures.is_empty(),
        "{} failed request(s), first: {:?}\n{}",
        failures.len(),
        failures.first(),
        old.stderr()
    );
    let ok: usize = tallies.iter().map(|t| t.ok).sum();
    let streams: usize = tallies.iter().map(|t| t.streams_ok).sum();
    // Sent to the old process before the upgrade was asked for, ended well after the old
    // process began draining (which is before the pidfile named the new one, plus the
    // command's 100 ms polling).
    let across = tallies
        .iter()
        .flat_map(|t| &t.spans)
        .filter(|(began, ended, stream)| {
            *stream && *began < asked && *ended > handed_over + Duration::from_millis(200)
        })
        .count();
    let connects: usize = tallies.iter().map(|t| t.connects).sum();
    eprintln!("{ok} answers ({streams} streams, {across} open across the upgrade), {connects} connections");
    assert!(across >= 1, "no stream was open across the upgrade");
    assert!(
        tallies.iter().all(|t| t.connects >= 2),
        "a client never moved to the new process"
    );

    // The new process serves: its pid answers health, and it is the pidfile's.
    assert!(!alive(old_pid));
    assert!(alive(new_pid));
    let health = old.health();
    assert_eq!(health["pid"], new_pid, "{health}");
    assert_eq!(health["status"], "ok");
    let r = post_json(
        &old.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let s = time_stream(&old.addr, &chat_body("gpt-4o-mini", true), 5, 10);
    assert!(
        String::from_utf8_lossy(&s.raw).contains("data: [DONE]"),
        "{}",
        String::from_utf8_lossy(&s.raw)
    );
});

#[test]
fn a_new_binary_that_fails_leaves_the_old_one_serving() {
    let mock = Mock::start(&[]);
    let g = Served::start(&mock, Driver::Uring);
    let old_pid = g.child.id();
    // The "new release" is a script that fails at once.
    let script = g.dir.path().join("broken.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'broken release' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    install(&script, &g.exe);

    let out = g.upgrade_cli(3);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still serves"),
        "{out:?}"
    );
    // The reason is logged, the old process serves on and is still the pidfile's.
    let log = g.stderr();
    assert!(
        log.contains("upgrade failed; this process keeps serving")
            && log.contains("exited before it was ready: exit status 1"),
        "{log}"
    );
    assert_eq!(g.pid_in_file(), old_pid);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(g.health()["pid"], old_pid);

    // A good binary back at the path: the next upgrade goes through.
    install(env!("CARGO_BIN_EXE_infergate"), &g.exe);
    let out = g.upgrade_cli(30);
    assert!(out.status.success(), "{out:?}\n{}", g.stderr());
    let new_pid = g.pid_in_file();
    let _cleanup = KillOnDrop(new_pid);
    assert_ne!(new_pid, old_pid);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
}
