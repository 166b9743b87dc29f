//! Control threads: signals (SIGHUP reloads, SIGTERM/SIGINT drain, SIGUSR2 upgrades) and a
//! watcher that reloads on file change and refreshes provider DNS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;

use super::reload::ConfigReloader;
use crate::http::tls::TlsTerminator;
use crate::proxy::Lifecycle;
use crate::upgrade::Upgrader;

/// Starts the signal thread. SIGTERM or SIGINT begins the drain; a second one exits at once.
/// SIGUSR2 hands the listening sockets to a new process and drains this one once it serves.
pub fn spawn_signal_thread(
    reloader: Option<Arc<ConfigReloader>>,
    lifecycle: Arc<Lifecycle>,
    upgrader: Option<Arc<Upgrader>>,
) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR2])?;
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
                    SIGUSR2 => match &upgrader {
                        Some(u) => spawn_upgrade(Arc::clone(u), Arc::clone(&lifecycle)),
                        None => tracing::warn!("SIGUSR2 ignored: upgrades are off"),
                    },
                    _ => {
                        if lifecycle.is_draining() {
                            tracing::warn!("second signal: exiting now");
                            std::process::exit(130);
                        }
                        tracing::info!(
                            "shutting down: no new connections, draining requests in flight"
                        );
                        // The listening sockets close with the shards': no handoff now.
                        if let Some(u) = &upgrader {
                            u.release();
                        }
                        start_drain(&lifecycle);
                    }
                }
            }
        })?;
    Ok(())
}

/// Begins the drain, with a watchdog: whatever happens to the shards, the process ends (the
/// drain has its own timeout, and this one backs it up).
fn start_drain(lifecycle: &Lifecycle) {
    lifecycle.begin_drain();
    let grace = lifecycle.exit_deadline();
    let _ = std::thread::Builder::new()
        .name("infergate-exit-watchdog".into())
        .spawn(move || {
            std::thread::sleep(grace);
            tracing::error!("shutdown did not finish in time; exiting now");
            std::process::exit(1);
        });
}

/// Runs an upgrade on a thread of its own (it waits for the new process, and signals must
/// still be handled meanwhile); drains this process once the new one serves.
fn spawn_upgrade(upgrader: Arc<Upgrader>, lifecycle: Arc<Lifecycle>) {
    if lifecycle.is_draining() {
        tracing::warn!("SIGUSR2 ignored: this process is already draining");
        return;
    }
    tracing::info!("SIGUSR2: upgrading to the binary at the launch path");
    let spawned = std::thread::Builder::new()
        .name("infergate-upgrade".into())
        .spawn(move || match upgrader.upgrade() {
            Ok(pid) => {
                tracing::info!(
                    new_pid = pid,
                    "upgrade: the new process serves on the listening sockets; draining this one"
                );
                start_drain(&lifecycle);
            }
            Err(e) => tracing::error!(error = %e, "upgrade failed; this process keeps serving"),
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "upgrade failed: no thread to run it; this process keeps serving");
    }
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
