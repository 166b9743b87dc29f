//! Noticing a client that left while its answer is prepared.
//!
//! A non-streamed call can wait minutes for a provider. If the client hangs up meanwhile,
//! the provider should stop working (and billing) for nobody: the wait races a watch on the
//! client socket, and when the client's side closes, the upstream call is dropped, which
//! closes its connection and cancels the provider's work.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::net::TcpStream;

use crate::http::ClientWatch;

/// How long a call runs before the client's socket is watched. Most answers come sooner,
/// and arming the watch costs a poll request on the socket and its cancellation (io_uring)
/// or a `poll` call (epoll) per request; a provider works this much longer for a client
/// that left at once, which is nothing beside a model's seconds.
const WATCH_AFTER: Duration = Duration::from_millis(50);

/// Runs `work` unless the client closes first (then `None`, and `work` is dropped).
pub async fn unless_client_leaves<F: Future>(
    client: ClientWatch<'_>,
    work: F,
) -> Option<F::Output> {
    match client {
        ClientWatch::Socket(client) => monoio::select! {
            out = work => Some(out),
            () = async {
                monoio::time::sleep(WATCH_AFTER).await;
                client_closed(client).await
            } => None,
        },
        ClientWatch::TlsSocket(fd) => monoio::select! {
            out = work => Some(out),
            () = peer_hung_up(fd) => None,
        },
        ClientWatch::H2(stream) => monoio::select! {
            out = work => Some(out),
            () = stream.reset() => None,
        },
    }
}

/// Resolves when the peer of a TLS connection has shut its side down. Its bytes are TLS
/// records (a close_notify alert comes before the FIN), so a peek can't tell; the socket's
/// RDHUP state can. Checked a few times a second: this only runs while an answer is awaited.
async fn peer_hung_up(fd: RawFd) {
    loop {
        monoio::time::sleep(Duration::from_millis(200)).await;
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a zero timeout: poll only reports the socket's state.
        let n = unsafe { libc::poll(&mut poll, 1, 0) };
        if n > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
    }
}

/// What a peek at the client socket found.
enum Peek {
    /// The client closed (EOF) or the socket failed.
    Closed,
    /// The client sent more bytes (a pipelined request): it is still there.
    Data,
    /// Nothing to read yet.
    Nothing,
}

/// Resolves when the client's side of the connection is closed; never, once it has sent
/// more bytes (those stay in the socket for the next request).
async fn client_closed(client: &TcpStream) {
    loop {
        if client.readable(false).await.is_err() {
            return;
        }
        match peek(client) {
            Peek::Closed => return,
            Peek::Data => std::future::pending::<()>().await,
            // A readiness that was not real (the legacy driver may report one): look again
            // a little later rather than spin.
            Peek::Nothing => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn peek(client: &TcpStream) -> Peek {
    let mut byte = [0u8; 1];
    // SAFETY: recv writes at most one byte into `byte`, which outlives the call; MSG_PEEK
    // leaves the data in the socket and MSG_DONTWAIT keeps the shard from blocking.
    let n = unsafe {
        libc::recv(
            client.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Peek::Closed,
        n if n > 0 => Peek::Data,
        _ => match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Peek::Nothing,
            _ => Peek::Closed,
        },
    }
}
