//! The pidfile (`[server] pidfile`): how `infergate upgrade --pidfile` and a supervisor find
//! the serving process. Written once the process serves (by a new process before it tells the
//! old one it is ready), replaced in one rename, and removed at exit only if it still names
//! this process (after a handoff it names the new one).

use std::path::{Path, PathBuf};

/// Why a pidfile could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    /// Reading or writing the file failed.
    #[error("pidfile {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a process id.
    #[error("pidfile {0} does not hold a process id")]
    Malformed(PathBuf),
}

/// This process's pidfile.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Writes this process's id to `path` (a temporary file renamed over it, so a reader
    /// never sees half a number).
    pub fn write(path: &Path) -> Result<Pidfile, PidfileError> {
        let io = |source| PidfileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{}\n", std::process::id())).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(Pidfile {
            path: path.to_path_buf(),
        })
    }

    /// Removes the file if it still names this process.
    pub fn remove_if_ours(&self) {
        if read_pid(&self.path).ok() == Some(std::process::id()) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove the pidfile");
            }
        }
    }
}

/// The process id a pidfile holds.
pub fn read_pid(path: &Path) -> Result<u32, PidfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PidfileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| PidfileError::Malformed(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn written_read_and_removed_only_when_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infergate.pid");
        let pidfile = Pidfile::write(&path).unwrap();
        assert_eq!(read_pid(&path).unwrap(), std::process::id());
        // A new process took over: the file is left alone.
        std::fs::write(&path, "4242\n").unwrap();
        pidfile.remove_if_ours();
        assert_eq!(read_pid(&path).unwrap(), 4242);
        let pidfile = Pidfile::write(&path).unwrap();
        pidfile.remove_if_ours();
        assert!(!path.exists());
        std::fs::write(&path, "nope").unwrap();
        assert!(matches!(read_pid(&path), Err(PidfileError::Malformed(_))));
    }
}
