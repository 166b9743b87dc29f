//! CPU affinity helpers: which CPUs this process may run on, and pinning a thread to one.
//!
//! Pinning follows the inherited affinity mask (e.g. from `taskset`), so the N-th worker
//! lands on the N-th *allowed* CPU rather than on CPU N.

/// The CPUs this process is allowed to run on, in ascending order (never empty).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let mut cpus = Vec::new();
    if rc == 0 {
        for cpu in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: cpu < CPU_SETSIZE.
            if unsafe { libc::CPU_ISSET(cpu, &set) } {
                cpus.push(cpu);
            }
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// Pins the calling thread to the `index`-th allowed CPU (wrapping around).
/// Pinning is best effort: a failure leaves the thread unpinned.
pub fn pin_current_thread(cpus: &[usize], index: usize) {
    if let Some(cpu) = cpus.get(index % cpus.len().max(1)) {
        let _ = monoio::utils::bind_to_cpu_set([*cpu]);
    }
}

/// Restricts a whole process (`pid`, 0 = this one) to the given CPUs.
pub fn set_process_affinity(pid: libc::pid_t, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET is bounds-checked by the filter below.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|c| **c < libc::CPU_SETSIZE as usize) {
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    let rc = unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
