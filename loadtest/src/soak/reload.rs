//! The soak's reloader: `POST /admin/reload` every few seconds from its own thread, counting
//! answers `200 {"reloaded":true…}` and anything else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The reloader thread and its counts.
pub struct Reloader {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// One reload; true when the gateway answered 200 with `"reloaded":true`.
pub fn reload_once(admin: SocketAddr, token: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&admin, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "POST /admin/reload HTTP/1.1\r\nhost: {admin}\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.starts_with("HTTP/1.1 200") && text.contains("\"reloaded\":true")
}

impl Reloader {
    /// Reloads the gateway whose admin API is on 127.0.0.1:`port` every `every`.
    pub fn start(port: u16, token: String, every: Duration) -> Self {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = std::thread::Builder::new()
            .name("soak-reloader".into())
            .spawn({
                let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
                move || {
                    let admin = SocketAddr::from(([127, 0, 0, 1], port));
                    let mut next = Instant::now() + every;
                    while !stop.load(Ordering::Acquire) {
                        if Instant::now() < next {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        next += every;
                        if reload_once(admin, &token) {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
            .ok();
        Self {
            ok,
            failed,
            stop,
            handle,
        }
    }

    /// Successful reloads so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed reloads so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops the thread; returns (ok, failed).
    pub fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        (self.ok(), self.failed())
    }
}
