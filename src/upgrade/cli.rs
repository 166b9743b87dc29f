//! `infergate upgrade`: asks a running gateway to replace itself with the binary now at its
//! launch path (SIGUSR2) and waits for the outcome.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::pidfile::read_pid;

/// Arguments of `infergate upgrade`.
#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The serving process's id.
    #[arg(long, conflicts_with = "pidfile")]
    pub pid: Option<u32>,
    /// The serving process's pidfile (default: `[server] pidfile` of `--config`).
    #[arg(long)]
    pub pidfile: Option<PathBuf>,
    /// How long to wait for the outcome, in seconds.
    #[arg(long, default_value_t = 120)]
    pub wait_secs: u64,
}

/// Why `infergate upgrade` failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeCliError {
    /// Neither `--pid` nor a pidfile says which process.
    #[error(
        "name the serving process: --pid PID or --pidfile FILE (or [server] pidfile in --config)"
    )]
    NoTarget,
    /// The pidfile could not be read.
    #[error(transparent)]
    Pidfile(#[from] super::pidfile::PidfileError),
    /// The signal could not be sent.
    #[error("cannot signal process {pid}: {source}")]
    Signal {
        /// The process.
        pid: u32,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing changed in time.
    #[error("process {pid} still serves after {waited:?} and nothing took over: the upgrade failed (its log says why) or its drain is still under way")]
    NoHandover {
        /// The process signalled.
        pid: u32,
        /// How long this waited.
        waited: Duration,
    },
}

/// Sends SIGUSR2 and waits: with a pidfile, until it names a new process (the handoff is done;
/// the old one drains and exits on its own); with `--pid`, until that process exited.
/// `config_pidfile` is `[server] pidfile` of the config given with `--config`, if any.
pub fn run(args: &UpgradeArgs, config_pidfile: Option<&Path>) -> Result<(), UpgradeCliError> {
    let pidfile = args.pidfile.as_deref().or(if args.pid.is_none() {
        config_pidfile
    } else {
        None
    });
    let old = match (args.pid, pidfile) {
        (Some(pid), _) => pid,
        (None, Some(file)) => read_pid(file)?,
        (None, None) => return Err(UpgradeCliError::NoTarget),
    };
    signal(old, libc::SIGUSR2)?;
    let waited = Duration::from_secs(args.wait_secs);
    let deadline = Instant::now() + waited;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(file) = pidfile {
            match read_pid(file) {
                Ok(new) if new != old && alive(new) => {
                    #[allow(clippy::print_stdout)] // the command's answer
                    {
                        println!("upgraded: process {new} serves; process {old} drains and exits");
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if !alive(old) {
            #[allow(clippy::print_stdout)]
            {
                println!("process {old} exited");
            }
            return Ok(());
        }
    }
    Err(UpgradeCliError::NoHandover { pid: old, waited })
}

fn signal(pid: u32, sig: libc::c_int) -> Result<(), UpgradeCliError> {
    let target = libc::pid_t::try_from(pid).map_err(|_| UpgradeCliError::Signal {
        pid,
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: kill(2) with a positive pid signals that one process.
    if target <= 0 || unsafe { libc::kill(target, sig) } != 0 {
        return Err(UpgradeCliError::Signal {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// True while the process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `PID (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }

    #[test]
    fn a_target_is_required() {
        let args = UpgradeArgs {
            pid: None,
            pidfile: None,
            wait_secs: 1,
        };
        assert!(matches!(run(&args, None), Err(UpgradeCliError::NoTarget)));
    }
}
