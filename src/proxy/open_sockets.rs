//! The client sockets a shard has open, so the end of a drain can shut down the ones still
//! open (idle keep-alive connections, requests past the drain timeout). Their tasks then see
//! the socket end and finish: a monoio runtime that is dropped with tasks still waiting on a
//! socket leaks them, and with them the shard's handles on the request log and the tracer,
//! which the process waits for before it exits.

use std::cell::RefCell;
use std::os::fd::RawFd;

/// Open client sockets by slot; a freed slot is reused, so after the busiest moment nothing
/// allocates.
#[derive(Default)]
pub struct OpenSockets {
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    fds: Vec<Option<RawFd>>,
    free: Vec<usize>,
}

impl OpenSockets {
    /// Notes an open socket; returns its slot for [`OpenSockets::remove`].
    pub fn insert(&self, fd: RawFd) -> usize {
        let mut s = self.slots.borrow_mut();
        match s.free.pop() {
            Some(i) => {
                if let Some(slot) = s.fds.get_mut(i) {
                    *slot = Some(fd);
                }
                i
            }
            None => {
                s.fds.push(Some(fd));
                s.fds.len() - 1
            }
        }
    }

    /// Forgets a socket (its connection ended; called right after its descriptor closed, with
    /// nothing on this thread running in between).
    pub fn remove(&self, slot: usize) {
        let mut s = self.slots.borrow_mut();
        if let Some(entry) = s.fds.get_mut(slot) {
            if entry.take().is_some() {
                s.free.push(slot);
            }
        }
    }

    /// Shuts down every socket still open (both directions): reads see the end, writes fail,
    /// and each connection's task finishes. Returns how many.
    pub fn shut_down_all(&self) -> usize {
        let s = self.slots.borrow();
        let mut n = 0;
        for fd in s.fds.iter().flatten() {
            // SAFETY: shutdown(2) on a descriptor this shard's open connection owns (slots
            // are removed as their connection's descriptor closes).
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn slots_are_reused_and_open_sockets_shut_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let open = OpenSockets::default();
        let a = open.insert(1000);
        open.remove(a);
        open.remove(a);
        let b = open.insert(server.as_raw_fd());
        assert_eq!(a, b, "the freed slot is reused");
        assert_eq!(open.shut_down_all(), 1);
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).unwrap(), 0, "the client sees the end");
    }
}
