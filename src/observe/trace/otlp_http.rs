//! A minimal blocking OTLP/HTTP client: one `POST {path}` with a protobuf body per batch, on
//! a fresh connection, bounded in time as a whole. The exporter posts about once a second,
//! so a kept-alive connection would save little; std sockets give exact timeouts and cost
//! no dependency (only `http://` collectors: TLS belongs to a local collector or agent).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use prost::Message;

use super::proto::ExportTraceServiceResponse;
use crate::config::OtlpEndpoint;

/// Most response bytes read (a collector's answer is a few bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// Why a batch did not reach the collector.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The collector's host.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// No connection within the time.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed or took too long.
    #[error("exchange with the collector failed: {0}")]
    Io(#[from] std::io::Error),
    /// The collector answered something that is not HTTP/1.x.
    #[error("the collector's answer is not HTTP")]
    NotHttp,
    /// The collector refused the batch.
    #[error("the collector answered {0}")]
    Status(u16),
}

/// Posts export requests to one collector.
#[derive(Debug, Clone)]
pub struct OtlpClient {
    endpoint: OtlpEndpoint,
    timeout: Duration,
}

impl OtlpClient {
    /// A client for `endpoint`; each post takes at most `timeout` (connect included).
    pub fn new(endpoint: OtlpEndpoint, timeout: Duration) -> Self {
        Self { endpoint, timeout }
    }

    /// Posts one encoded `ExportTraceServiceRequest`. `Ok(n)`: accepted, `n` spans of it
    /// refused by the collector (its partial-success answer).
    pub fn post(&self, body: &[u8]) -> Result<i64, ExportError> {
        let deadline = Instant::now() + self.timeout;
        let mut stream = self.connect(deadline)?;
        let e = &self.endpoint;
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nuser-agent: infergate/{}\r\nconnection: close\r\n\r\n",
            e.path,
            e.authority,
            body.len(),
            env!("CARGO_PKG_VERSION"),
        );
        stream.set_write_timeout(Some(left(deadline)?))?;
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let (status, answer) = read_response(&mut stream, deadline)?;
        if !(200..300).contains(&status) {
            return Err(ExportError::Status(status));
        }
        let rejected = ExportTraceServiceResponse::decode(answer.as_slice())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| p.rejected_spans);
        Ok(rejected)
    }

    fn connect(&self, deadline: Instant) -> Result<TcpStream, ExportError> {
        let host = self.endpoint.host.as_str();
        let addrs: Vec<SocketAddr> = (host, self.endpoint.port)
            .to_socket_addrs()
            .map_err(|source| ExportError::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        let mut tried = host.to_string();
        for addr in addrs {
            tried = addr.to_string();
            match TcpStream::connect_timeout(&addr, left(deadline)?) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(ExportError::Connect {
            addr: tried,
            source: last,
        })
    }
}

/// Time left before `deadline` (an error once it passed: a zero timeout means "none" to
/// std sockets).
fn left(deadline: Instant) -> Result<Duration, std::io::Error> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(std::io::ErrorKind::TimedOut.into())
    } else {
        Ok(d)
    }
}

/// Reads the answer's status and body (by its content length, or to the close).
fn read_response(stream: &mut TcpStream, deadline: Instant) -> Result<(u16, Vec<u8>), ExportError> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(&mut chunk)?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = resp.code.ok_or(ExportError::NotHttp)?;
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let body = buf.get(head_len..).unwrap_or_default();
                let complete = match length {
                    Some(len) => body.len() >= len,
                    None => n == 0,
                };
                if complete || buf.len() >= MAX_RESPONSE {
                    let end = length.map_or(body.len(), |l| l.min(body.len()));
                    return Ok((status, body.get(..end).unwrap_or_default().to_vec()));
                }
            }
            Ok(httparse::Status::Partial) if n > 0 && buf.len() < MAX_RESPONSE => {}
            _ => return Err(ExportError::NotHttp),
        }
        if n == 0 {
            return Err(ExportError::NotHttp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server that reads one request and writes `answer`.
    fn server(answer: &'static [u8]) -> (OtlpEndpoint, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"BODY") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            got
        });
        let endpoint = OtlpEndpoint {
            host: "127.0.0.1".into(),
            port,
            authority: format!("127.0.0.1:{port}"),
            path: "/v1/traces".into(),
        };
        (endpoint, h)
    }

    #[test]
    fn posts_protobuf_and_reads_the_answer() {
        let (e, h) = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let client = OtlpClient::new(e, Duration::from_secs(2));
        assert_eq!(client.post(b"BODY").unwrap(), 0);
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("content-type: application/x-protobuf\r\n"));
        assert!(req.contains("content-length: 4\r\n"));
    }

    #[test]
    fn a_partial_success_counts_the_refused_spans() {
        // partial_success { rejected_spans: 3 }
        let (e, h) = server(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n\x0a\x02\x08\x03");
        let client = OtlpClient::new(e, Duration::from_secs(2));
        assert_eq!(client.post(b"BODY").unwrap(), 3);
        h.join().unwrap();
    }

    #[test]
    fn errors_are_reported_not_hidden() {
        let (e, h) = server(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n");
        let client = OtlpClient::new(e.clone(), Duration::from_secs(2));
        assert!(matches!(
            client.post(b"BODY"),
            Err(ExportError::Status(503))
        ));
        h.join().unwrap();
        // Nobody listens there any more.
        let err = client.post(b"BODY").unwrap_err();
        assert!(matches!(err, ExportError::Connect { .. }), "{err}");
    }

    #[test]
    fn a_silent_collector_costs_at_most_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = OtlpEndpoint {
            host: "127.0.0.1".into(),
            port,
            authority: "x".into(),
            path: "/v1/traces".into(),
        };
        let client = OtlpClient::new(e, Duration::from_millis(300));
        let t = Instant::now();
        assert!(client.post(b"BODY").is_err());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        drop(l);
    }
}
