//! Control threads: signals (SIGHUP reloads, SIGTERM/SIGINT drain) and a watcher that reloads
//! on file change and refreshes provider DNS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::reload::ConfigReloader;
use crate::http::tls::TlsTerminator;
use crate::proxy::Lifecycle;

/// Starts the signal thread. SIGTERM or SIGINT begins the drain; a second one exits at once.
pub fn spawn_signal_thread(
    reloader: Option<Arc<ConfigReloader>>,
    lifecycle: Arc<Lifecycle>,
) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("infergate-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => match &reloader {
                        Some(r) => {
                            let _ = r.reload("SIGHUP");
                        }
                        None => tracing::warn!("SIGHUP ignored: no config file to reload"),
                    },
                    _ => {
                        if lifecycle.is_draining() {
                            tracing::warn!("second signal: exiting now");
                            std::process::exit(130);
                        }
                        tracing::info!(
                            "shutting down: no new connections, draining requests in flight"
                        );
                        lifecycle.begin_drain();
                        // Whatever happens to the shards, the process ends: the drain has
                        // its own timeout, and this one backs it up.
                        let grace = lifecycle.exit_deadline();
                        let _ = std::thread::Builder::new()
                            .name("infergate-exit-watchdog".into())
                            .spawn(move || {
                                std::thread::sleep(grace);
                                tracing::error!("shutdown did not finish in time; exiting now");
                                std::process::exit(1);
                            });
                    }
                }
            }
        })?;
    Ok(())
}

/// Starts the watcher: the config file's mtime every 500 ms (and the TLS certificate's and
/// key's, when the listener terminates TLS), provider DNS every 30 s.
pub fn spawn_watch_thread(
    reloader: Arc<ConfigReloader>,
    lifecycle: Arc<Lifecycle>,
    tls: Option<Arc<TlsTerminator>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("infergate-watch".into())
        .spawn(move || {
            let mut last_dns = Instant::now();
            while !lifecycle.is_draining() {
                std::thread::sleep(Duration::from_millis(500));
                reloader.reload_if_changed();
                if let Some(tls) = &tls {
                    reload_certificate(tls, &reloader);
                }
                if last_dns.elapsed() >= Duration::from_secs(30) {
                    last_dns = Instant::now();
                    reloader.upstreams().refresh_dns();
                }
            }
        })?;
    Ok(())
}

/// Loads the listener's certificate again when its files (or their paths in the config)
/// changed; a broken file keeps the current certificate and is logged.
fn reload_certificate(tls: &TlsTerminator, reloader: &ConfigReloader) {
    let Some(files) = reloader.table().load().server.tls.clone() else {
        return;
    };
    match tls.reload_if_changed(&files) {
        Ok(true) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "TLS certificate not reloaded; the current one stays"),
    }
}
