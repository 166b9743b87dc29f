//! Whether shards can run on io_uring (they fall back to epoll when they can't), and whether
//! the locked-memory limit holds their rings.

use super::Finding;

/// What the io_uring check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UringProbe {
    /// What `io_uring_setup` returned: `Ok` or the errno.
    pub setup: Result<(), i32>,
    /// `/proc/sys/kernel/io_uring_disabled` (absent on kernels before 6.6).
    pub disabled_sysctl: Option<u32>,
    /// `INFERGATE_DRIVER=epoll` is set.
    pub forced_epoll: bool,
}

/// What is wrong when io_uring is blocked, and where to turn it back on.
const SECCOMP_FIX: &str = "allow io_uring_setup, io_uring_enter and io_uring_register: under systemd keep them in SystemCallFilter= (deploy/systemd/infergate.service lists them), in Docker/Kubernetes use a seccomp profile that allows them (the default ones block io_uring); or accept epoll";

/// The io_uring line.
pub fn check_io_uring(p: &UringProbe) -> Finding {
    const CHECK: &str = "io_uring";
    let errno = match p.setup {
        Ok(()) if p.forced_epoll => {
            return Finding::ok(
                CHECK,
                "io_uring works, but INFERGATE_DRIVER=epoll makes the shards use epoll",
            )
        }
        Ok(()) => return Finding::ok(CHECK, "io_uring_setup works: shards run on io_uring"),
        Err(errno) => errno,
    };
    let fallback = "shards fall back to epoll (slower, more syscalls per request)";
    match (errno, p.disabled_sysctl) {
        (libc::EPERM, Some(2)) => Finding::warn(
            CHECK,
            format!("kernel.io_uring_disabled = 2: io_uring is off for every process; {fallback}"),
            "sysctl -w kernel.io_uring_disabled=0 (persist it in /etc/sysctl.d/), or 1 with the gateway's group in kernel.io_uring_group",
        ),
        (libc::EPERM, Some(1)) => Finding::warn(
            CHECK,
            format!("kernel.io_uring_disabled = 1: only members of kernel.io_uring_group may create rings; {fallback}"),
            "add the gateway's user to the group kernel.io_uring_group names (systemd: SupplementaryGroups=), or set the sysctl to 0",
        ),
        (libc::EPERM, _) => Finding::warn(
            CHECK,
            format!("io_uring_setup is refused (EPERM) by a seccomp filter or security module; {fallback}"),
            SECCOMP_FIX,
        ),
        (libc::ENOSYS, _) => Finding::warn(
            CHECK,
            format!("io_uring_setup does not exist here (ENOSYS): a kernel before 5.1 or built without io_uring, or a seccomp filter that hides it; {fallback}"),
            SECCOMP_FIX,
        ),
        (libc::ENOMEM, _) => Finding::warn(
            CHECK,
            format!("io_uring_setup ran out of locked memory (ENOMEM); {fallback}"),
            "raise the locked-memory limit: LimitMEMLOCK=infinity (systemd) or ulimit -l unlimited",
        ),
        (other, _) => Finding::warn(
            CHECK,
            format!(
                "io_uring_setup failed: {}; {fallback}",
                std::io::Error::from_raw_os_error(other)
            ),
            "see io_uring_setup(2) for this error",
        ),
    }
}

/// Asks the kernel for a small ring and closes it at once.
pub fn try_io_uring_setup() -> Result<(), i32> {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup reads and writes the params struct passed, which is large
    // enough; the fd it returns is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    // SAFETY: fd is the ring just created and owned by nothing else.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// `kernel.io_uring_disabled`, where the kernel has it.
pub fn read_io_uring_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Locked memory one shard's ring needs on kernels that charge it to `RLIMIT_MEMLOCK`:
/// 1,024 submission entries (64 B), 2,048 completion entries (16 B), the index array and
/// headers, rounded up.
pub const RING_BYTES: u64 = 128 * 1024;

/// The memlock line: `limit` is the soft `RLIMIT_MEMLOCK` (`None`: unlimited), `kernel`
/// the running kernel's (major, minor).
pub fn check_memlock(limit: Option<u64>, kernel: Option<(u32, u32)>, shards: usize) -> Finding {
    const CHECK: &str = "memlock";
    let shown = limit.map_or("unlimited".to_string(), human_bytes);
    if let Some((major, minor)) = kernel {
        if (major, minor) >= (5, 12) {
            return Finding::ok(
                CHECK,
                format!("kernel {major}.{minor} charges io_uring rings to the memory cgroup, not RLIMIT_MEMLOCK ({shown})"),
            );
        }
    }
    let need = RING_BYTES.saturating_mul(shards as u64);
    match limit {
        Some(l) if l < need => Finding::warn(
            CHECK,
            format!(
                "RLIMIT_MEMLOCK is {shown}; the rings of {shards} shard(s) need about {} on this kernel, so io_uring setup fails (ENOMEM) and shards fall back to epoll",
                human_bytes(need)
            ),
            "LimitMEMLOCK=infinity (systemd) or ulimit -l unlimited",
        ),
        _ => Finding::ok(
            CHECK,
            format!("RLIMIT_MEMLOCK {shown} holds the rings of {shards} shard(s)"),
        ),
    }
}

/// The running kernel's (major, minor) from `uname`.
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain data that uname fills.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    parse_kernel_version(&release.to_string_lossy())
}

/// `6.1.0-18-amd64` → (6, 1).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `65536` → `64 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024 && value % 1024 == 0 && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS.get(unit).copied().unwrap_or("B"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    fn probe(setup: Result<(), i32>, disabled: Option<u32>) -> UringProbe {
        UringProbe {
            setup,
            disabled_sysctl: disabled,
            forced_epoll: false,
        }
    }

    #[test]
    fn a_working_ring_is_ok() {
        let f = check_io_uring(&probe(Ok(()), Some(0)));
        assert_eq!(f.level, Level::Ok);
        let f = check_io_uring(&UringProbe {
            forced_epoll: true,
            ..probe(Ok(()), None)
        });
        assert!(f.detail.contains("INFERGATE_DRIVER=epoll"), "{f:?}");
    }

    #[test]
    fn the_sysctl_is_named_when_it_disables_io_uring() {
        let f = check_io_uring(&probe(Err(libc::EPERM), Some(2)));
        assert_eq!(f.level, Level::Warn);
        assert!(f.detail.contains("kernel.io_uring_disabled = 2"), "{f:?}");
        assert!(f
            .fix
            .unwrap()
            .contains("sysctl -w kernel.io_uring_disabled=0"));
        let f = check_io_uring(&probe(Err(libc::EPERM), Some(1)));
        assert!(f.detail.contains("io_uring_group"), "{f:?}");
    }

    #[test]
    fn seccomp_is_blamed_for_eperm_and_enosys() {
        for errno in [libc::EPERM, libc::ENOSYS] {
            let f = check_io_uring(&probe(Err(errno), Some(0)));
            assert_eq!(f.level, Level::Warn);
            assert!(f.detail.contains("seccomp"), "{f:?}");
            assert!(f.fix.unwrap().contains("SystemCallFilter"));
        }
        let f = check_io_uring(&probe(Err(libc::ENOMEM), None));
        assert!(
            f.fix.unwrap().contains("LimitMEMLOCK"),
            "ENOMEM points at memlock"
        );
    }

    #[test]
    fn memlock_matters_only_before_5_12() {
        let f = check_memlock(Some(64 * 1024), Some((6, 1)), 8);
        assert_eq!(f.level, Level::Ok);
        assert!(f.detail.contains("memory cgroup"), "{f:?}");
        let f = check_memlock(Some(64 * 1024), Some((5, 4)), 8);
        assert_eq!(f.level, Level::Warn);
        assert!(f.detail.contains("64 KiB"), "{f:?}");
        assert!(f.detail.contains("1 MiB"), "{f:?}");
        assert_eq!(check_memlock(None, Some((5, 4)), 8).level, Level::Ok);
        assert_eq!(
            check_memlock(Some(8 << 20), Some((5, 10)), 8).level,
            Level::Ok
        );
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(parse_kernel_version("x"), None);
        assert!(kernel_version().is_some());
    }

    #[test]
    fn the_real_probe_answers() {
        // Whatever this machine allows, the probe returns instead of failing the process,
        // and its answer turns into a line.
        let setup = try_io_uring_setup();
        let f = check_io_uring(&probe(setup, read_io_uring_disabled()));
        assert_ne!(f.level, Level::Fail);
    }
}
