//! A stand-in OpenTelemetry collector for `scenario --traces`: accepts OTLP/HTTP posts on
//! 127.0.0.1, reads each body whole and answers `200` with an empty body, so the gateway's
//! exporter does its full work (encode, connect, post, read the answer) while the sink
//! costs nothing on the gateway's core. It runs until the scenario process exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// Largest body the sink reads (an OTLP batch of 512 spans is far smaller).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Starts the sink; returns its address.
pub fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("otlp-sink".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name("otlp-sink-conn".into())
                    .spawn(move || serve(stream));
            }
        })?;
    Ok(addr)
}

/// Answers each request on one connection until it closes.
fn serve(stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        if length > MAX_BODY {
            return;
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
