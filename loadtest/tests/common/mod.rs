//! Shared test helpers: the real mockllm binary on a free port, and curl.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// A mockllm process started for one test, killed when dropped.
pub struct Mock {
    pub child: Child,
    pub url: String,
}

impl Mock {
    /// Starts `mockllm --listen 127.0.0.1:0 ARGS` and reads its one stdout line.
    pub fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mockllm"))
            .args(["--listen", "127.0.0.1:0", "--no-pin"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mockllm");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read line");
        let url = line
            .trim()
            .strip_prefix("mockllm listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Mock { child, url }
    }

    /// `GET /mock/stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let out = curl(&["-sS", &format!("{}/mock/stats", self.url)]);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl with a 10 s cap.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

/// Splits a `curl -i` output into (status line + headers, body).
pub fn split_head(out: &[u8]) -> (String, String) {
    let text = String::from_utf8(out.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_string())
}
