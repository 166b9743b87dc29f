//! Each provider's credential (the variables it names are set; their values are never
//! shown) and whether it can be reached from here (DNS, TCP connect, TLS handshake), with
//! the `Date` its server answers for the clock check.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::Finding;
use crate::route::{CredentialRef, Provider, Scheme};

/// The credential line of provider `name`; `env` looks a variable up.
pub fn check_key(
    name: &str,
    credential: &CredentialRef,
    env: &dyn Fn(&str) -> Option<String>,
) -> Finding {
    let check = format!("provider {name} key");
    let set = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
    let env_fix = |vars: &str| {
        format!("set {vars} in the gateway's environment (systemd: Environment= or EnvironmentFile=/etc/infergate/env); the provider is skipped until then")
    };
    match credential {
        CredentialRef::None => Finding::ok(check, "no credential needed"),
        CredentialRef::KeyEnv(var) if set(var) => Finding::ok(check, format!("{var} is set")),
        CredentialRef::KeyEnv(var) => Finding::fail(
            check,
            format!("environment variable {var} is not set"),
            env_fix(var),
        ),
        CredentialRef::AwsEnv => {
            let missing: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
                .into_iter()
                .filter(|v| !set(v))
                .collect();
            if missing.is_empty() {
                Finding::ok(check, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set")
            } else {
                let vars = missing.join(" and ");
                Finding::fail(check, format!("{vars} not set"), env_fix(&vars))
            }
        }
    }
}

/// A provider that answered.
#[derive(Debug, Clone)]
pub struct Reached {
    /// The address connected to.
    pub addr: SocketAddr,
    /// Whether a TLS handshake was made.
    pub tls: bool,
    /// How long connect and handshake took.
    pub took: Duration,
    /// The `Date` of its answer to `HEAD /`, if it sent one.
    pub date: Option<SystemTime>,
    /// When that answer was read.
    pub observed_at: SystemTime,
}

/// Why a provider could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    /// The built-in mock: nothing to reach.
    #[error("built-in mock")]
    NoAddress,
    /// The host name did not resolve.
    #[error("{host} does not resolve: {why}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's answer.
        why: String,
    },
    /// The TCP connection failed.
    #[error("TCP connect to {addr} failed: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {host} ({addr}) failed: {why}")]
    Tls {
        /// The server name.
        host: String,
        /// Where.
        addr: SocketAddr,
        /// The TLS error.
        why: String,
    },
    /// Nothing came back within the doctor's time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The reachability line of provider `name`.
pub fn check_reach(name: &str, reached: Result<Reached, ReachError>) -> Finding {
    let check = format!("provider {name} reachable");
    match reached {
        Ok(r) => Finding::ok(
            check,
            format!(
                "{} {} in {} ms",
                r.addr,
                if r.tls { "TCP + TLS" } else { "TCP" },
                r.took.as_millis()
            ),
        ),
        Err(ReachError::NoAddress) => Finding::ok(check, "built-in mock: nothing to reach"),
        Err(e) => {
            let fix = match &e {
                ReachError::Resolve { .. } => "check the host in base_url and this node's DNS (/etc/resolv.conf); under systemd, RestrictAddressFamilies= must allow AF_INET/AF_INET6/AF_UNIX".to_string(),
                ReachError::Connect { addr, source }
                    if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                {
                    format!("nothing listens at {addr}: check base_url's host and port and that the provider is up")
                }
                ReachError::Connect { .. } | ReachError::Timeout(_) => {
                    "check egress from this node: firewall rules, security groups, an HTTPS proxy the node must use".to_string()
                }
                ReachError::Tls { why, .. } if looks_like_clock(why) => {
                    "the certificate looks expired or not yet valid: check the system clock (see the clock line)".to_string()
                }
                ReachError::Tls { .. } => {
                    "the provider's certificate must chain to the web PKI roots or to tls_ca_file (private CAs); check base_url's host name matches the certificate".to_string()
                }
                ReachError::NoAddress => String::new(),
            };
            Finding::fail(check, e.to_string(), fix)
        }
    }
}

fn looks_like_clock(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    why.contains("expired") || why.contains("notvalidyet") || why.contains("not valid yet")
}

/// Reaches every provider at once (each in a thread of its own, `timeout` for each), in
/// the order given.
pub fn reach_all(
    providers: &[&Arc<Provider>],
    timeout: Duration,
) -> Vec<(String, Result<Reached, ReachError>)> {
    let pending: Vec<_> = providers
        .iter()
        .map(|p| {
            let (tx, rx) = std::sync::mpsc::channel();
            let provider = Arc::clone(p);
            let spawned = std::thread::Builder::new()
                .name("infergate-doctor".into())
                .spawn(move || {
                    let _ = tx.send(reach(&provider, timeout));
                });
            (p.name.clone(), spawned.ok().map(|_| rx))
        })
        .collect();
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
    pending
        .into_iter()
        .map(|(name, rx)| {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = rx
                .and_then(|rx| rx.recv_timeout(left).ok())
                .unwrap_or(Err(ReachError::Timeout(timeout)));
            (name, result)
        })
        .collect()
}

/// Resolves the provider's host, connects, makes the TLS handshake for `https`, and asks
/// `HEAD /` for the server's `Date`.
pub fn reach(provider: &Provider, timeout: Duration) -> Result<Reached, ReachError> {
    let addr = provider.addr.as_ref().ok_or(ReachError::NoAddress)?;
    let started = Instant::now();
    let target = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .map_err(|e| ReachError::Resolve {
            host: addr.host.clone(),
            why: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ReachError::Resolve {
            host: addr.host.clone(),
            why: "no address".into(),
        })?;
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let mut tcp = TcpStream::connect_timeout(&target, left).map_err(|source| {
        if source.kind() == std::io::ErrorKind::TimedOut {
            ReachError::Timeout(timeout)
        } else {
            ReachError::Connect {
                addr: target,
                source,
            }
        }
    })?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let head = format!(
        "HEAD / HTTP/1.1\r\nhost: {}\r\nuser-agent: infergate-doctor\r\nconnection: close\r\n\r\n",
        addr.authority
    );
    let tls_err = |why: String| ReachError::Tls {
        host: addr.host.clone(),
        addr: target,
        why,
    };
    let (took, date) = match addr.scheme {
        Scheme::Https => {
            let config = crate::upstream::blocking_client_config(provider.tls_ca_file.as_deref())
                .map_err(tls_err)?;
            let name = rustls::pki_types::ServerName::try_from(addr.host.clone())
                .map_err(|e| tls_err(e.to_string()))?;
            let mut conn =
                rustls::ClientConnection::new(config, name).map_err(|e| tls_err(e.to_string()))?;
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)
                    .map_err(|e| tls_err(e.to_string()))?;
            }
            let took = started.elapsed();
            let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
            (took, read_date(&mut stream, &head))
        }
        Scheme::Http => (started.elapsed(), read_date(&mut tcp, &head)),
    };
    Ok(Reached {
        addr: target,
        tls: addr.scheme == Scheme::Https,
        took,
        date,
        observed_at: SystemTime::now(),
    })
}

/// Sends `head` and reads the response head (at most 16 KiB) for its `Date`.
fn read_date(io: &mut (impl Read + Write), head: &str) -> Option<SystemTime> {
    io.write_all(head.as_bytes()).ok()?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 2048];
    while buf.len() < 16 * 1024 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = io.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n)?);
    }
    date_header(&buf)
}

/// The `Date` header of a response head.
pub fn date_header(head: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("date")
            .then(|| httpdate::parse_http_date(value.trim()).ok())?
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;
    use crate::doctor::Level;

    fn provider(url: &str) -> Provider {
        let mut cfg = ProviderConfig::openai_for_tests(url);
        cfg.connect_timeout_ms = 2000;
        Provider::compile("p", &cfg).unwrap()
    }

    #[test]
    fn keys_are_named_never_shown() {
        let env = |v: &str| (v == "SET_KEY").then(|| "sk-secret-value".to_string());
        let f = check_key("openai", &CredentialRef::KeyEnv("SET_KEY".into()), &env);
        assert_eq!(f.level, Level::Ok);
        assert!(!f.line().contains("sk-secret"), "{f:?}");
        let f = check_key("openai", &CredentialRef::KeyEnv("UNSET_KEY".into()), &env);
        assert_eq!(f.level, Level::Fail);
        assert_eq!(f.detail, "environment variable UNSET_KEY is not set");
        assert!(f.fix.unwrap().contains("EnvironmentFile"));
        let f = check_key("bedrock", &CredentialRef::AwsEnv, &env);
        assert_eq!(
            f.detail,
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"
        );
        let blank = |_: &str| Some("  ".to_string());
        let f = check_key("o", &CredentialRef::KeyEnv("K".into()), &blank);
        assert_eq!(f.level, Level::Fail, "a blank key is not a key");
        assert_eq!(check_key("m", &CredentialRef::None, &env).level, Level::Ok);
    }

    #[test]
    fn a_closed_port_is_refused_and_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let p = provider(&format!("http://127.0.0.1:{port}/v1"));
        let f = check_reach("p", reach(&p, Duration::from_secs(2)));
        assert_eq!(f.level, Level::Fail);
        assert!(f.detail.contains(&format!("127.0.0.1:{port}")), "{f:?}");
        assert!(f.fix.unwrap().contains("nothing listens"));
    }

    #[test]
    fn a_listening_provider_is_reached_and_its_date_read() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n",
            );
        });
        let p = provider(&format!("http://127.0.0.1:{port}/v1"));
        let r = reach(&p, Duration::from_secs(5)).unwrap();
        assert!(!r.tls);
        assert_eq!(
            r.date,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(check_reach("p", Ok(r)).level, Level::Ok);
    }

    #[test]
    fn a_server_that_is_not_tls_fails_the_handshake() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let mut cfg = ProviderConfig::openai_for_tests(&format!("https://localhost:{port}/v1"));
        cfg.connect_timeout_ms = 2000;
        let p = Provider::compile("p", &cfg).unwrap();
        let f = check_reach("p", reach(&p, Duration::from_secs(5)));
        assert_eq!(f.level, Level::Fail);
        assert!(
            f.detail.starts_with("TLS handshake with localhost"),
            "{f:?}"
        );
        assert!(f.fix.unwrap().contains("tls_ca_file"));
    }

    #[test]
    fn clock_trouble_is_recognised_in_tls_errors() {
        let e = ReachError::Tls {
            host: "h".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            why: "invalid peer certificate: Expired".into(),
        };
        let f = check_reach("p", Err(e));
        assert!(f.fix.unwrap().contains("system clock"));
    }

    #[test]
    fn date_headers_parse() {
        let head = b"HTTP/1.1 200 OK\r\nServer: x\r\nDATE: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        assert!(date_header(head).is_some());
        assert!(date_header(b"HTTP/1.1 200 OK\r\ndate: yesterday\r\n\r\n").is_none());
        assert!(date_header(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
    }
}
