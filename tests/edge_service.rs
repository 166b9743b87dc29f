//! Running as a service, against the real binary: `/admin/live` and `/admin/ready` (ready
//! turns 503 while a SIGTERM drain runs, live and ready turn 503 while a shard is wedged),
//! and the systemd notifications (`READY=1` once the port accepts, `WATCHDOG=1` at half the
//! `WATCHDOG_USEC` interval and withheld while a shard is wedged, `STOPPING=1` on SIGTERM)
//! received on a unix datagram socket the test binds as `NOTIFY_SOCKET`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn mock_only(mock: Option<&Mock>) -> String {
    match mock {
        Some(m) => format!(
            "[providers.slow]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.\"gpt-4o-mini\"]\ntargets = [{{ provider = \"slow\", model = \"gpt-4o-mini\" }}]\n",
            m.base_url()
        ),
        None => "[providers.mock]\nkind = \"mock\"\n\n[models.\"gpt-4o-mini\"]\ntargets = [{ provider = \"mock\", model = \"mock-model\" }]\n".to_string(),
    }
}

fn admin_get(g: &Gateway, path: &str) -> RawResponse {
    raw_request(
        &g.admin,
        &format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    )
}

/// Polls `path` until `want(status, body)` holds or `within` passes; returns the last answer.
fn poll_admin(
    g: &Gateway,
    path: &str,
    within: Duration,
    want: impl Fn(&RawResponse) -> bool,
) -> RawResponse {
    let deadline = Instant::now() + within;
    loop {
        let r = admin_get(g, path);
        if want(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A datagram socket in `dir` for the gateway's notifications.
fn notify_socket(dir: &std::path::Path) -> (UnixDatagram, String) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (sock, path.display().to_string())
}

/// The next notification, or `None` after `within`.
fn next_note(sock: &UnixDatagram, within: Duration) -> Option<(String, Instant)> {
    sock.set_read_timeout(Some(within.max(Duration::from_millis(1))))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some((
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        Instant::now(),
    ))
}

/// Notifications until one contains `line`; panics after `within`.
fn wait_for_note(sock: &UnixDatagram, line: &str, within: Duration) -> (String, Instant) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_note(sock, left) {
            Some((note, at)) if note.lines().any(|l| l == line) => return (note, at),
            Some(_) => continue,
            None => panic!("no {line} within {within:?}"),
        }
    }
}

#[test]
fn ready_and_live_answer_and_ready_turns_503_while_draining() {
    // Answers take 3 s, so a request is still in flight while the drain runs.
    let mock = Mock::start(&["--ttft-ms", "3000"]);
    let g = Gateway::start(&mock_only(Some(&mock)), Driver::Uring);
    let live = admin_get(&g, "/admin/live");
    assert_eq!(live.status, 200, "{}", live.body_str());
    assert_eq!(live.json()["status"], "live");
    assert_eq!(live.json()["shards"], 2);
    let ready = admin_get(&g, "/admin/ready");
    assert_eq!(ready.status, 200, "{}", ready.body_str());
    assert_eq!(ready.json()["status"], "ready");
    assert!(ready.json()["table_version"].is_u64());

    let addr = g.addr.clone();
    let slow = std::thread::spawn(move || {
        post_json(
            &addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", false),
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    g.signal("TERM");
    let during = poll_admin(&g, "/admin/ready", Duration::from_secs(2), |r| {
        r.status == 503
    });
    assert_eq!(during.status, 503, "{}", during.body_str());
    assert_eq!(during.json()["status"], "not_ready");
    assert!(
        during.json()["reason"]
            .as_str()
            .unwrap()
            .starts_with("draining"),
        "{}",
        during.body_str()
    );
    // Draining is not dead: nothing should restart the process for finishing its work.
    let live = admin_get(&g, "/admin/live");
    assert_eq!(live.status, 200, "{}", live.body_str());
    // The request in flight still gets its answer.
    let answer = slow.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body_str());
}

#[test]
fn systemd_hears_ready_after_the_port_accepts_then_watchdog_pings_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, path) = notify_socket(dir.path());
    // A 1 s watchdog: pings every 500 ms.
    let g = Gateway::start_with_env(
        &mock_only(None),
        Driver::Uring,
        &[
            ("NOTIFY_SOCKET", path.as_str()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let (note, _) = wait_for_note(&sock, "READY=1", Duration::from_secs(10));
    assert!(note.contains("STATUS=serving on"), "{note}");
    // When READY=1 arrives the port accepts and the gateway answers.
    let answer = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.body_str());
    assert_eq!(admin_get(&g, "/admin/ready").status, 200);

    let start = Instant::now();
    let mut pings = vec![start];
    while start.elapsed() < Duration::from_millis(3200) {
        if let Some((note, at)) = next_note(&sock, Duration::from_millis(1200)) {
            assert_eq!(note, "WATCHDOG=1", "only pings while serving");
            pings.push(at);
        }
    }
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        pings.len() >= 5,
        "expected a ping every 500 ms for 3.2 s, got {} ({gaps:?})",
        pings.len() - 1
    );
    // The first gap is from an arbitrary start. After it the pings come every half
    // interval on average, and no gap reaches the watchdog interval (systemd would kill the
    // service).
    let steady = &pings[1..];
    let mean = (steady[steady.len() - 1] - steady[0]) / (steady.len() as u32 - 1);
    assert!(
        (Duration::from_millis(400)..=Duration::from_millis(650)).contains(&mean),
        "mean ping gap {mean:?} ({gaps:?})"
    );
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(1000)),
        "ping gaps {gaps:?}"
    );

    g.signal("TERM");
    let (note, _) = wait_for_note(&sock, "STOPPING=1", Duration::from_secs(5));
    assert!(note.contains("STATUS=draining"), "{note}");
}

#[test]
fn a_wedged_shard_fails_live_and_ready_and_stops_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, path) = notify_socket(dir.path());
    // One shard, so the wedge stops all of it; a 600 ms liveness timeout; a 400 ms watchdog
    // (pings every 200 ms).
    let g = Gateway::start_with(
        &mock_only(None),
        Driver::Uring,
        &[
            ("NOTIFY_SOCKET", path.as_str()),
            ("WATCHDOG_USEC", "400000"),
            ("INFERGATE_FAILPOINTS", "1"),
        ],
        &[("shards", "1"), ("liveness_timeout_ms", "600")],
    );
    wait_for_note(&sock, "READY=1", Duration::from_secs(10));
    wait_for_note(&sock, "WATCHDOG=1", Duration::from_secs(2));

    // The failpoint blocks the shard's thread for 3 s inside a request.
    let addr = g.addr.clone();
    let wedge = std::thread::spawn(move || {
        post_json(
            &addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", false),
            &[("x-infergate-failpoint", "wedge-shard")],
        )
    });
    let wedged_at = Instant::now();
    let live = poll_admin(&g, "/admin/live", Duration::from_secs(2), |r| {
        r.status == 503
    });
    assert_eq!(live.status, 503, "{}", live.body_str());
    assert_eq!(live.json()["status"], "dead");
    let reason = live.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("shard 0 missed its heartbeat for"),
        "{reason}"
    );
    let ready = admin_get(&g, "/admin/ready");
    assert_eq!(ready.status, 503, "{}", ready.body_str());

    // Pings stop while the shard is silent: from a liveness timeout after the wedge until
    // it ends (3 s), no WATCHDOG=1. Drain what was sent before the shard went silent.
    let quiet_from = wedged_at + Duration::from_millis(1000);
    let quiet_until = wedged_at + Duration::from_millis(2700);
    while Instant::now() < quiet_until {
        let left = quiet_until.saturating_duration_since(Instant::now());
        if let Some((note, at)) = next_note(&sock, left) {
            assert!(
                at < quiet_from,
                "a watchdog ping ({note}) while the shard was wedged, {:?} after the wedge",
                at - wedged_at
            );
        }
    }
    // When the shard turns again, so do the pings, and it is live again.
    wait_for_note(&sock, "WATCHDOG=1", Duration::from_secs(3));
    let live = poll_admin(&g, "/admin/live", Duration::from_secs(2), |r| {
        r.status == 200
    });
    assert_eq!(live.status, 200, "{}", live.body_str());
    let answer = wedge.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body_str());
}
