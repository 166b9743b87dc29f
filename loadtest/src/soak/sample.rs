//! What a soak watches in the gateway's process: resident memory, open descriptors, open
//! TCP connections and threads, read from `/proc`.

use std::collections::HashSet;

use serde::Serialize;

/// One reading of the gateway's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Resources {
    /// Resident set size, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
    /// Of those, sockets.
    pub sockets: u64,
    /// The process's TCP connections in state ESTABLISHED (client and provider side).
    pub tcp_established: u64,
    /// Threads.
    pub threads: u64,
}

/// `VmRSS` in KiB from `/proc/PID/status`.
pub fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `Threads` from `/proc/PID/status`.
pub fn parse_threads(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|rest| rest.trim().parse().ok())
}

/// The socket inode of an fd link target `socket:[12345]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Inodes of the ESTABLISHED (state `01`) sockets in a `/proc/net/tcp` or `tcp6` table.
pub fn established_inodes(table: &str) -> HashSet<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            (fields.get(3) == Some(&"01")).then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

/// Reads the resources of `pid`; None when the process is gone.
pub fn read(pid: u32) -> Option<Resources> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut established = HashSet::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            established.extend(established_inodes(&text));
        }
    }
    let mut out = Resources {
        rss_kib: parse_rss_kib(&status)?,
        threads: parse_threads(&status).unwrap_or(0),
        ..Resources::default()
    };
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        out.fds += 1;
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if let Some(inode) = link.to_str().and_then(socket_inode) {
            out.sockets += 1;
            if established.contains(&inode) {
                out.tcp_established += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_status_and_socket_links() {
        let status = "Name:\tinfergate\nVmPeak:\t  900 kB\nVmRSS:\t   41236 kB\nThreads:\t9\n";
        assert_eq!(parse_rss_kib(status), Some(41236));
        assert_eq!(parse_threads(status), Some(9));
        assert_eq!(parse_rss_kib("Name: x\n"), None);
        assert_eq!(socket_inode("socket:[98765]"), Some(98765));
        assert_eq!(socket_inode("pipe:[98765]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn finds_established_connections_in_the_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 20 4 30 10 -1\n\
           2: 0100007F:D431 0100007F:1F90 06 00000000:00000000 03:00000A2F 00000000     0        0 0 3 0000000000000000\n";
        let inodes = established_inodes(table);
        assert_eq!(inodes, HashSet::from([2222]));
    }

    #[test]
    fn reads_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let r = read(std::process::id()).unwrap();
        assert!(r.rss_kib > 0 && r.threads >= 1);
        assert!(r.sockets >= 3, "{r:?}");
        // Both ends of the connection are this process's.
        assert!(r.tcp_established >= 2, "{r:?}");
        drop((client, server));
        assert!(read(u32::MAX).is_none());
    }
}
