//! The HTTP/2 server side, without a socket: the real h2 server (`http::h2::builder`, the
//! gateway's settings) reads the fuzz input as a client's bytes after the preface over an
//! in-memory connection, on a monoio runtime. Each stream is served as `proxy/http2.rs`
//! serves it, minus the phases: its head rendered and parsed under the limits
//! (`http::h2::request_head`), its body read from DATA frames under the size limit and the
//! body budget (`ServerConn::read_body`), an answer written as HTTP/1.1 bytes and sent as
//! HEADERS and DATA by `H2Responder` (Content-Length for even body lengths, chunked for odd),
//! an error status when the head or body was refused, then the linger that drains an unread
//! body.
//!
//! Invariants: no panic; a body read is within the limit; every stream's task ends once the
//! connection is gone (none outlives it by a second); the body budget is whole again after.
#![no_main]

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use infergate::http::h2::{builder, request_head, H2Responder, PREFACE};
use infergate::http::{BodyBudget, ServerConn, ServerLimits};
use infergate_fuzz::small_limits;
use libfuzzer_sys::fuzz_target;
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client connection that sends `input` in reads of `step` bytes, yielding to the other
/// tasks between reads, then EOF; everything the server writes is accepted and dropped.
struct Wire {
    input: Vec<u8>,
    at: usize,
    step: usize,
    yielded: bool,
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.yielded {
            // Let the stream tasks run between reads, as a socket that is not always ready does.
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        let n = self
            .step
            .min(self.input.len() - self.at)
            .min(buf.remaining());
        buf.put_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    static RUNTIME: RefCell<monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>> = RefCell::new(
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a monoio runtime"),
    );
}

/// Serves one stream as `proxy/http2.rs::serve_stream` does, with an echo for the phases.
async fn serve_stream(
    request: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
    limits: ServerLimits,
    budget: BodyBudget,
) {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let mut conn = ServerConn::for_h2(H2Responder::new(respond), body, declared);
    let answer = match request_head(&parts, &limits) {
        Ok(head) => {
            let _ = (head.path(), head.body_framing(), head.headers.len());
            let mut permit = budget.permit();
            match conn.read_body(&head, &limits, &mut permit).await {
                Ok(body) => {
                    assert!(body.len() <= limits.max_body_bytes, "body over the limit");
                    Ok(body)
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let _ = match answer {
        Ok(body) if body.len() % 2 == 0 => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n", body.len());
            conn.write_response(head.into_bytes(), body)
                .await
                .map(|_| ())
        }
        Ok(body) => {
            let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
            chunked.extend_from_slice(&body);
            chunked.extend_from_slice(b"\r\n0\r\n\r\n");
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            conn.write_response(head.as_bytes().to_vec(), Bytes::from(chunked))
                .await
                .map(|_| ())
        }
        Err(e) => match e.status() {
            Some(status) => {
                let head = format!("HTTP/1.1 {status} Refused\r\ncontent-length: 2\r\n\r\n");
                conn.write_response(head.into_bytes(), Bytes::from_static(b"{}"))
                    .await
                    .map(|_| ())
            }
            None => Ok(()),
        },
    };
    conn.linger_if_body_unread().await;
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, frames)) = data.split_first() else {
        return;
    };
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(frames);
    let wire = Wire {
        input,
        at: 0,
        step: usize::from(step) * 8 + 9,
        yielded: false,
    };
    let limits = small_limits();
    let budget = BodyBudget::new(16 * 1024);
    RUNTIME.with(|rt| {
        rt.borrow_mut().block_on(async {
            let handshake = builder(4, limits.max_header_bytes).handshake::<_, Bytes>(wire);
            let Ok(mut conn) = handshake.await else {
                return;
            };
            let mut tasks = Vec::new();
            while let Some(Ok((request, respond))) = conn.accept().await {
                tasks.push(monoio::spawn(serve_stream(
                    request,
                    respond,
                    limits,
                    budget.clone(),
                )));
            }
            drop(conn);
            for task in tasks {
                monoio::time::timeout(Duration::from_secs(1), task)
                    .await
                    .expect("a stream's task outlived its connection");
            }
        });
    });
    assert_eq!(budget.in_use(), 0, "body budget not returned");
});
