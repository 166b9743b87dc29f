//! How this process was started, captured before anything else runs, so an upgrade starts
//! the binary now at that path. `/proc/self/exe` would not do: after the file is replaced it
//! points at the old, deleted inode.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The program path (as started, made absolute, symlinks kept), its argv\[0\], the other
/// arguments and the working directory.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The path to start: argv\[0\] made absolute (or found on `PATH`), not canonicalized, so
    /// a symlink switched to a new release is followed at upgrade time.
    pub exe: PathBuf,
    /// argv\[0\] as given, passed on unchanged.
    pub arg0: OsString,
    /// The arguments after argv\[0\].
    pub args: Vec<OsString>,
    /// The working directory at start (relative config paths are read from it).
    pub cwd: Option<PathBuf>,
}

impl Launch {
    /// Captures this process's launch. Call first in `main`.
    pub fn capture() -> Launch {
        let mut argv = std::env::args_os();
        let arg0 = argv.next().unwrap_or_default();
        let cwd = std::env::current_dir().ok();
        let path = std::env::var_os("PATH");
        let exe = resolve(Path::new(&arg0), cwd.as_deref(), path.as_deref())
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from(&arg0));
        Launch {
            exe,
            arg0,
            args: argv.collect(),
            cwd,
        }
    }
}

/// Where the shell would have found `arg0`: a path with a slash is taken as is (made absolute
/// against `cwd`); a bare name is looked up on `path`.
fn resolve(arg0: &Path, cwd: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if arg0.as_os_str().is_empty() {
        return None;
    }
    if arg0.components().count() > 1 || arg0.is_absolute() {
        return Some(match cwd {
            Some(dir) if arg0.is_relative() => dir.join(arg0),
            _ => arg0.to_path_buf(),
        });
    }
    std::env::split_paths(path?)
        .map(|dir| match cwd {
            Some(c) if dir.is_relative() => c.join(dir).join(arg0),
            _ => dir.join(arg0),
        })
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths_are_made_absolute_without_following_links() {
        let cwd = Path::new("/srv/gw");
        assert_eq!(
            resolve(Path::new("./bin/infergate"), Some(cwd), None),
            Some(PathBuf::from("/srv/gw/./bin/infergate"))
        );
        assert_eq!(
            resolve(Path::new("/usr/bin/infergate"), Some(cwd), None),
            Some(PathBuf::from("/usr/bin/infergate"))
        );
        assert_eq!(resolve(Path::new(""), Some(cwd), None), None);
    }

    #[test]
    fn a_bare_name_is_found_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("infergate-test-bin");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            resolve(Path::new("infergate-test-bin"), None, Some(&path)),
            None,
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            resolve(Path::new("infergate-test-bin"), None, Some(&path)),
            Some(exe)
        );
    }
}
