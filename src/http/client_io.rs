//! The client side of a connection as the HTTP code sees it: plain TCP, TLS, or one stream of
//! an HTTP/2 connection. Responses are written the same way to all three (HTTP/1.1 bytes);
//! an HTTP/2 stream re-frames them ([`super::h2::H2Responder`]).

use std::os::fd::{AsRawFd, RawFd};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use monoio::BufResult;

use super::h2::H2Responder;
use super::poll_rent::PollRent;

/// A TLS session over a client connection (tokio-rustls on monoio's poll-io bridge).
pub type TlsClientStream = tokio_rustls::server::TlsStream<TcpStreamPoll>;

/// Where a request came from and its response goes.
pub enum ClientIo {
    /// HTTP/1.1 over plain TCP: owned-buffer IO straight on the socket.
    Plain(TcpStream),
    /// HTTP/1.1 over TLS.
    Tls(Box<PollRent<TlsClientStream>>),
    /// One HTTP/2 stream: reads see nothing (its body comes through the stream), writes are
    /// the response.
    H2(Box<H2Responder>),
}

/// How to notice that the client went away while its answer is prepared.
pub enum ClientWatch<'a> {
    /// A plain socket: readiness, then a peek.
    Socket(&'a TcpStream),
    /// A TLS socket: the peer's end of the TCP connection (its bytes are TLS records).
    TlsSocket(RawFd),
    /// An HTTP/2 stream: the client resets it or the connection ends.
    H2(&'a H2Responder),
}

impl ClientIo {
    /// What to watch for the client going away.
    pub fn watch(&self) -> ClientWatch<'_> {
        match self {
            ClientIo::Plain(s) => ClientWatch::Socket(s),
            ClientIo::Tls(s) => ClientWatch::TlsSocket(s.get_ref().get_ref().0.as_raw_fd()),
            ClientIo::H2(r) => ClientWatch::H2(r),
        }
    }

    /// True for an HTTP/2 stream.
    pub fn is_h2(&self) -> bool {
        matches!(self, ClientIo::H2(_))
    }
}

impl AsyncReadRent for ClientIo {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientIo::Plain(s) => s.read(buf).await,
            ClientIo::Tls(s) => s.read(buf).await,
            ClientIo::H2(_) => (Ok(0), buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientIo::Plain(s) => s.readv(buf).await,
            ClientIo::Tls(s) => s.readv(buf).await,
            ClientIo::H2(_) => (Ok(0), buf),
        }
    }
}

impl AsyncWriteRent for ClientIo {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientIo::Plain(s) => s.write(buf).await,
            ClientIo::Tls(s) => s.write(buf).await,
            ClientIo::H2(r) => r.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientIo::Plain(s) => s.writev(buf).await,
            ClientIo::Tls(s) => s.writev(buf).await,
            ClientIo::H2(r) => r.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ClientIo::Plain(s) => s.flush().await,
            ClientIo::Tls(s) => s.flush().await,
            ClientIo::H2(r) => r.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            ClientIo::Plain(s) => s.shutdown().await,
            ClientIo::Tls(s) => s.shutdown().await,
            ClientIo::H2(r) => r.shutdown().await,
        }
    }
}
