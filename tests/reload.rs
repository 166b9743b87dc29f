//! Hot swaps of the route table: admin API, SIGHUP, file change, invalid configs refused,
//! and 50 swaps under a fixed-rate load with no failed request. Also `check-config`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn routed_to(upstream: &str, upstream_model: &str) -> String {
    format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{upstream}"

[models."gpt-4o-mini"]
targets = [{{ provider = "p", model = "{upstream_model}" }}]
"#
    )
}

fn served_model(g: &Gateway) -> String {
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    r.json()["model"].as_str().unwrap().to_string()
}

both_drivers!(admin_reload_sighup_and_file_change, |d| {
    let m = Mock::start(&[]);
    let g = Gateway::start(&routed_to(&m.base_url(), "model-a"), d);
    assert_eq!(served_model(&g), "model-a");

    // Admin API.
    g.rewrite_config(&routed_to(&m.base_url(), "model-b"));
    let r = g.admin_reload();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.json()["reloaded"], true);
    assert_eq!(served_model(&g), "model-b");

    // An invalid config is refused with the reason; the old table keeps serving.
    g.rewrite_config("[models.x]\ntargets = [{ provider = \"ghost\", model = \"y\" }]\n");
    let r = g.admin_reload();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown provider"),
        "{}",
        r.body_str()
    );
    assert_eq!(served_model(&g), "model-b");
    g.rewrite_config("this is [not toml");
    assert_eq!(g.admin_reload().status, 400);
    assert_eq!(served_model(&g), "model-b");

    // SIGHUP.
    g.rewrite_config(&routed_to(&m.base_url(), "model-c"));
    g.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_model(&g) != "model-c" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A change of the file alone (the watcher polls every 500 ms).
    std::thread::sleep(Duration::from_millis(1100)); // mtime granularity
    g.rewrite_config(&routed_to(&m.base_url(), "model-d"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_model(&g) != "model-d" {
        assert!(Instant::now() < deadline, "file change did not reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = raw_request(
        &g.admin,
        &format!(
            "GET /admin/health HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    )
    .json();
    assert_eq!(health["status"], "ok");
    assert!(health["table_version"].as_u64().unwrap() >= 4);
});

both_drivers!(fifty_swaps_under_fixed_rate_load_fail_no_request, |d| {
    let a = Mock::start(&["--tokens", "8"]);
    let b = Mock::start(&["--tokens", "8"]);
    let g = Gateway::start(&routed_to(&a.base_url(), "model-a"), d);
    let load = Command::new(loadgen_bin())
        .args([
            "--url",
            &format!("{}/v1/chat/completions", g.url()),
            "--rate",
            "300",
            "--duration",
            "6s",
            "--connections",
            "32",
            "--json",
            "--timeout",
            "5s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..50 {
        let (up, model) = if i % 2 == 0 {
            (&b, "model-b")
        } else {
            (&a, "model-a")
        };
        g.rewrite_config(&routed_to(&up.base_url(), model));
        let r = g.admin_reload();
        assert_eq!(r.status, 200, "swap {i}: {}", r.body_str());
        std::thread::sleep(Duration::from_millis(90));
    }
    let out = load.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"]["errors"], 0, "{report:#}");
    assert!(
        report["requests"]["ok"].as_u64().unwrap() >= 1500,
        "{report:#}"
    );
    // Both upstreams served traffic: the swaps took effect while it flowed.
    let served = |m: &Mock| m.stats()["requests"]["chat"].as_u64().unwrap();
    assert!(
        served(&a) > 100 && served(&b) > 100,
        "a={} b={}",
        served(&a),
        served(&b)
    );
});

#[test]
fn check_config_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, routed_to("http://127.0.0.1:9/v1", "m")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["check-config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[models.x]\ntargets = [{ provider = \"ghost\", model = \"y\" }]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown provider"),
        "{out:?}"
    );

    // The shipped configs are valid.
    for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).unwrap() {
        let path = f.unwrap().path();
        let out = Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(["check-config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {out:?}", path.display());
    }
}

both_drivers!(graceful_shutdown_finishes_requests_in_flight, |d| {
    let m = Mock::start(&["--tokens", "10", "--itl-ms", "150"]);
    let mut g = Gateway::start(&routed_to(&m.base_url(), "model-a"), d);
    let addr = g.addr.clone();
    let inflight = std::thread::spawn(move || {
        post_json(
            &addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", true),
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    g.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    // No new connections once draining.
    assert!(
        std::net::TcpStream::connect(&g.addr).is_err(),
        "still accepting after SIGTERM"
    );
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().ends_with("data: [DONE]\n\n"),
        "stream cut short: {}",
        r.body_str()
    );
    let status = g.proc.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The request was recorded before exit.
    assert_eq!(g.records().len(), 1);
});
