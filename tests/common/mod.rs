//! Shared harness for the integration tests: start the real `infergate` and `mockllm`
//! binaries on ephemeral ports, talk to them over real sockets, stop them at the end.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which IO driver the gateway under test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The default: io_uring where available.
    Uring,
    /// Forced epoll (`INFERGATE_DRIVER=epoll`).
    Epoll,
}

/// Generates one test per driver: `mod NAME { fn io_uring(); fn epoll(); }`.
#[macro_export]
macro_rules! both_drivers {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn io_uring() {
                ($body)($crate::common::Driver::Uring)
            }
            #[test]
            fn epoll() {
                ($body)($crate::common::Driver::Epoll)
            }
        }
    };
}

/// The directory holding the workspace's binaries (target/debug or target/release).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test-binary>
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Path of the `mockllm` binary, building it if `cargo test` has not.
pub fn mockllm_bin() -> PathBuf {
    let p = bin_dir().join("mockllm");
    if !p.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build", "-p", "loadtest", "--bin", "mockllm", "--bin", "loadgen",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building mockllm failed");
    }
    p
}

/// Path of the `loadgen` binary.
pub fn loadgen_bin() -> PathBuf {
    mockllm_bin();
    bin_dir().join("loadgen")
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => continue,
            Err(_) => panic!("{what} did not print {prefix:?} in time"),
        }
    }
}

/// Extracts `host:port` from `... http://HOST:PORT ...` (or `https://`).
fn addr_in(line: &str) -> String {
    let rest = line.split("://").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_string()
}

/// A running mockllm.
pub struct Mock {
    pub proc: Proc,
    pub addr: String,
}

impl Mock {
    /// Starts mockllm with extra CLI arguments.
    pub fn start(args: &[&str]) -> Mock {
        Self::start_with_env(args, &[])
    }

    /// Starts mockllm with extra CLI arguments and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Mock {
        let mut child = Command::new(mockllm_bin())
            .args(["--listen", "127.0.0.1:0", "--threads", "1"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = spawn_reader(&mut child);
        let line = wait_line(&lines, "mockllm listening on", "mockllm");
        Mock {
            addr: addr_in(&line),
            proc: Proc { child, lines },
        }
    }

    /// `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `GET /mock/last-request` as JSON: the last provider request the mock received.
    pub fn last_request(&self) -> serde_json::Value {
        let resp = raw_request(
            &self.addr,
            &format!(
                "GET /mock/last-request HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                self.addr
            ),
        );
        serde_json::from_str(resp.body_str()).unwrap()
    }

    /// `GET /mock/stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let resp = raw_request(
            &self.addr,
            &format!(
                "GET /mock/stats HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                self.addr
            ),
        );
        serde_json::from_str(resp.body_str()).unwrap()
    }
}

/// Makes a fresh [`TestCerts`] in a temporary directory of its own.
pub fn test_certificates() -> TestCerts {
    let dir = tempfile::tempdir().unwrap();
    let mut certs = TestCerts::new(dir.path());
    certs._tmp = Some(dir);
    certs
}

/// The admin token every test gateway is started with (`[admin] token_env`).
pub const ADMIN_TOKEN: &str = "test-admin-token-7f3a";

/// A running gateway with its temp dir (config, request log, stderr).
pub struct Gateway {
    pub proc: Proc,
    pub addr: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes `config` (a TOML body without `[server]`, `[admin]`, `[log]`) and starts the gateway.
    pub fn start(config: &str, driver: Driver) -> Gateway {
        Self::start_with_env(config, driver, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_with_env(config: &str, driver: Driver, env: &[(&str, &str)]) -> Gateway {
        Self::start_with(config, driver, env, &[])
    }

    /// Like `start_with_env`, with `[server]` settings replaced or added (`("shards", "1")`).
    pub fn start_with(
        config: &str,
        driver: Driver,
        env: &[(&str, &str)],
        server: &[(&str, &str)],
    ) -> Gateway {
        Self::start_adjusted(config, driver, env, server, |_| {})
    }

    /// Like `start_with`; `adjust` may change the command before it starts.
    pub fn start_adjusted(
        config: &str,
        driver: Driver,
        env: &[(&str, &str)],
        server: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Gateway {
        let mut child = Self::spawn(config, driver, env, server, adjust);
        let lines = spawn_reader(&mut child.0);
        let line = wait_line(&lines, "infergate listening on", "infergate");
        Self::ready(child, lines, line, driver)
    }

    /// Starts the gateway process without waiting for it; `adjust` may change the command
    /// (resource limits, say). Returns the child and its temp dir.
    pub fn spawn(
        config: &str,
        driver: Driver,
        env: &[(&str, &str)],
        server: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> (Child, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let full = Self::full_config_with(config, dir.path(), server);
        let path = dir.path().join("infergate.toml");
        std::fs::write(&path, full).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infergate"));
        cmd.arg("--config")
            .arg(&path)
            .env("INFERGATE_LOG", "info,infergate=debug")
            .env("INFERGATE_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(stderr);
        if driver == Driver::Epoll {
            cmd.env("INFERGATE_DRIVER", "epoll");
        } else {
            cmd.env_remove("INFERGATE_DRIVER");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        adjust(&mut cmd);
        (cmd.spawn().unwrap(), dir)
    }

    fn ready(
        (child, dir): (Child, tempfile::TempDir),
        lines: mpsc::Receiver<String>,
        line: String,
        driver: Driver,
    ) -> Gateway {
        let want = if driver == Driver::Epoll {
            "epoll driver"
        } else {
            "driver"
        };
        assert!(line.contains(want), "unexpected driver line: {line}");
        let addr = addr_in(&line);
        let admin = addr_in(&wait_line(&lines, "admin listening on", "infergate"));
        Gateway {
            proc: Proc { child, lines },
            addr,
            admin,
            dir,
        }
    }

    /// The full config text for a test body: server on port 0, admin on port 0, log in `dir`.
    pub fn full_config(body: &str, dir: &Path) -> String {
        Self::full_config_with(body, dir, &[])
    }

    /// `full_config` with `[server]` settings replaced or added.
    pub fn full_config_with(body: &str, dir: &Path, server: &[(&str, &str)]) -> String {
        let mut settings: Vec<(String, String)> = [
            ("listen", "\"127.0.0.1:0\""),
            ("shards", "2"),
            ("max_body_bytes", "65536"),
            ("max_header_bytes", "8192"),
            ("max_headers", "50"),
            ("header_timeout_ms", "2000"),
            ("drain_timeout_ms", "5000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in server {
            match settings.iter_mut().find(|(name, _)| name == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => settings.push((k.to_string(), v.to_string())),
            }
        }
        let server: String = settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        format!(
            "[server]\n{server}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"INFERGATE_TEST_ADMIN_TOKEN\"\n\n[log]\npath = \"{}\"\n\n{body}",
            dir.join("requests.jsonl").display()
        )
    }

    /// Rewrites the config file (same server/admin/log sections).
    pub fn rewrite_config(&self, body: &str) {
        let full = Self::full_config(body, self.dir.path());
        let tmp = self.dir.path().join("infergate.toml.tmp");
        std::fs::write(&tmp, full).unwrap();
        std::fs::rename(tmp, self.dir.path().join("infergate.toml")).unwrap();
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request records written so far: whole lines only, since the writer may be
    /// part-way through a line (its buffer flushes at a size, not at a newline).
    pub fn records(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until at least `n` records are written.
    pub fn wait_records(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.records();
            if r.len() >= n || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The gateway's stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// POSTs `/admin/reload` with the admin token.
    pub fn admin_reload(&self) -> RawResponse {
        raw_request(
            &self.admin,
            &format!("POST /admin/reload HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", self.admin),
        )
    }

    /// Sends a signal to the gateway.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.proc.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// A parsed HTTP response from `raw_request`.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body_str()))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Sends raw bytes, reads until the server closes, parses one response.
pub fn raw_request(addr: &str, request: &str) -> RawResponse {
    raw_request_bytes(addr, request.as_bytes())
}

/// Like `raw_request` with arbitrary bytes.
pub fn raw_request_bytes(addr: &str, request: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Parses one HTTP/1.1 response (Content-Length or chunked, or to the end).
pub fn parse_response(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let rest = &buf[end + 4..];
    let mut r = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    if r.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        r.body = dechunk(rest);
    } else if let Some(n) = r.header("content-length") {
        let n: usize = n.parse().unwrap();
        r.body = rest[..n.min(rest.len())].to_vec();
    } else {
        r.body = rest.to_vec();
    }
    r
}

/// Decodes a complete chunked body.
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..nl])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    out
}

/// A JSON POST with `connection: close`.
pub fn post_json(
    addr: &str,
    path: &str,
    body: &str,
    extra_headers: &[(&str, &str)],
) -> RawResponse {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    raw_request(addr, &req)
}

/// Runs curl with arguments.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap()
}

/// A chat request body.
pub fn chat_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"Say hello to the gateway"}}],"temperature":0.2,"x_unknown_field":{{"kept":true}}}}"#
    )
}

/// A minimal upstream that records the exact bytes of each request it gets and answers with a
/// fixed chat completion. With `close_after_each`, it closes every connection after one
/// response *without* saying so, like a provider whose idle timeout fired.
pub struct CaptureUpstream {
    pub addr: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CaptureUpstream {
    pub fn start(close_after_each: bool) -> CaptureUpstream {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (reqs, conns) = (requests.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                conns.fetch_add(1, Ordering::SeqCst);
                let reqs = reqs.clone();
                std::thread::spawn(move || loop {
                    let Some(req) = read_one_request(&mut s) else {
                        return;
                    };
                    reqs.lock().unwrap().push(req);
                    let body = r#"{"id":"chatcmpl-cap","object":"chat.completion","created":1,"model":"captured","choices":[{"index":0,"message":{"role":"assistant","content":"captured"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
                    let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if s.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                    if close_after_each {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                });
            }
        });
        CaptureUpstream {
            addr,
            requests,
            connections,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The n-th captured request as (head, body).
    pub fn request(&self, n: usize) -> (String, Vec<u8>) {
        let all = self.requests.lock().unwrap();
        let raw = &all[n];
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&raw[..end]).to_string(),
            raw[end + 4..].to_vec(),
        )
    }
}

fn read_one_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Some(buf[..end + 4 + len].to_vec());
        }
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// A provider stand-in with a fixed script, for answers no real provider would give: every
/// request gets `response` (raw HTTP bytes, written as they are), or, without one, no answer
/// at all while it counts the connections the gateway closes on it.
pub struct ScriptedUpstream {
    pub addr: String,
    /// Requests read so far.
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Connections the gateway closed while a request was waiting for its answer.
    pub closed_while_waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ScriptedUpstream {
    pub fn start(response: Option<Vec<u8>>) -> ScriptedUpstream {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (reqs, gone) = (requests.clone(), closed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let (reqs, gone, response) = (reqs.clone(), gone.clone(), response.clone());
                std::thread::spawn(move || loop {
                    if read_one_request(&mut s).is_none() {
                        return;
                    }
                    reqs.fetch_add(1, Ordering::SeqCst);
                    match &response {
                        Some(bytes) => {
                            if s.write_all(bytes).is_err() {
                                return;
                            }
                        }
                        None => {
                            // Hold the request; an EOF means the gateway gave up on it.
                            let mut byte = [0u8; 1];
                            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            if let Ok(0) = s.read(&mut byte) {
                                gone.fetch_add(1, Ordering::SeqCst);
                            }
                            return;
                        }
                    }
                });
            }
        });
        ScriptedUpstream {
            addr,
            requests,
            closed_while_waiting: closed,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// A chunked HTTP/1.1 response carrying `events` as a `text/event-stream` body.
pub fn sse_response(events: &[String]) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for e in events {
        out.extend_from_slice(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The resident memory of a process in bytes (from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// The Python OTLP receiver, killed when dropped.
pub struct OtlpReceiver {
    pub child: std::process::Child,
    pub port: u16,
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/otlp_receiver.py"
            ))
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("the OTLP receiver did not start (is opentelemetry-proto installed? scripts/test-deps.sh): {line:?}")
            })
            .parse()
            .unwrap();
        OtlpReceiver {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every line written so far; a line with `error` fails the test.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for l in &lines {
            assert!(l.get("error").is_none(), "the receiver refused a post: {l}");
        }
        lines
    }

    /// The spans of `trace`, once there are `n` of them (server span first).
    pub fn wait_trace(&self, trace: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut spans: Vec<serde_json::Value> = self
                .lines()
                .into_iter()
                .filter(|s| s["trace_id"] == trace)
                .collect();
            if spans.len() >= n {
                assert_eq!(spans.len(), n, "{spans:#?}");
                spans.sort_by_key(|s| (s["kind"] != 2, s["start"].as_u64()));
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} spans of trace {trace} arrived: {spans:#?}",
                spans.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs `tests/python/<script>` (a check script ending with `N passed, N failed`) against
/// the gateway with `env` set; fails the test with both outputs and the gateway's stderr
/// unless every check passed. Returns the script's output.
pub fn run_python_check(g: &Gateway, script: &str, env: &[(&str, &str)]) -> String {
    run_python_check_at(g, &g.url(), script, env)
}

/// Like [`run_python_check`], with the gateway reached at `url` (an `https://` one, say).
pub fn run_python_check_at(g: &Gateway, url: &str, script: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/python")
                .join(script),
        )
        .env("INFERGATE_URL", url)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(", 0 failed"),
        "{script} failed:\n{text}\ngateway stderr:\n{}",
        g.stderr()
    );
    text
}

/// A private CA and a server certificate it signed for `localhost` and 127.0.0.1, as PEM
/// files made with openssl, for tests of TLS on either side of the gateway.
pub struct TestCerts {
    /// The CA certificate (what clients trust).
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
    dir: PathBuf,
    /// The temporary directory, when the certificates own it.
    _tmp: Option<tempfile::TempDir>,
}

impl TestCerts {
    /// Makes a CA and a first server certificate in `dir`.
    pub fn new(dir: &Path) -> TestCerts {
        openssl_in(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=infergate test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let mut certs = TestCerts {
            ca: dir.join("ca.pem"),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        let (cert, key) = certs.issue("server");
        certs.cert = cert;
        certs.key = key;
        certs
    }

    /// Issues another server certificate (`NAME.pem`, `NAME.key`) from the same CA.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = &self.dir;
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl_in(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl_in(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                "ext.cnf",
            ],
        );
        (d.join(pem), d.join(key))
    }
}

/// Runs openssl in `dir`; fails the test with its stderr when it fails.
fn openssl_in(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A streamed chat answer timed from the moment its request was written over a fresh
/// HTTP/1.1 connection: when the first event arrived, when the stream ended, and the bytes.
pub struct StreamTiming {
    pub first_event_at: Duration,
    pub total: Duration,
    pub raw: Vec<u8>,
}

/// Sends `body` (a streamed chat request) with mockllm's `x-mock-tokens: tokens` and
/// `x-mock-itl-ms: itl_ms`, and times the answer (see [`StreamTiming`]).
pub fn time_stream(addr: &str, body: &str, tokens: u32, itl_ms: u32) -> StreamTiming {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-mock-tokens: {tokens}\r\nx-mock-itl-ms: {itl_ms}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
    let start = Instant::now();
    let mut raw = Vec::new();
    let mut tmp = [0u8; 4096];
    let first_event_at = loop {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&tmp[..n]);
        if raw.windows(6).any(|w| w == b"data: ") {
            break start.elapsed();
        }
    };
    let _ = s.read_to_end(&mut raw);
    StreamTiming {
        first_event_at,
        total: start.elapsed(),
        raw,
    }
}
