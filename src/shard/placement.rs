//! Where the shards run: how many there are and the CPUs they are pinned to, from
//! `[server] shards` and `cpus`, the `--shards` flag and the CPUs the process may use.

use crate::config::{compact_cpu_list, ServerConfig};

/// How many shards start and which CPU each is pinned to (shard `i` to
/// `cpus[i % cpus.len()]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// Number of shards (at least 1).
    pub count: usize,
    /// The CPUs, ascending, never empty.
    pub cpus: Vec<usize>,
}

/// Why the configured CPU set can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuSetError {
    /// CPUs the process is not allowed to run on (offline, outside its cgroup cpuset or
    /// `taskset` mask, or not on this machine).
    #[error(
        "[server] cpus names CPU(s) {} that this process may not run on (allowed: {})",
        compact_cpu_list(.outside),
        compact_cpu_list(.allowed)
    )]
    NotAllowed {
        /// The configured CPUs outside the allowed set.
        outside: Vec<usize>,
        /// The allowed set.
        allowed: Vec<usize>,
    },
}

impl ShardPlan {
    /// The plan for this process: [`resolve`](Self::resolve) with the CPUs it may run on
    /// and its available parallelism.
    pub fn for_this_process(
        flag: Option<usize>,
        server: &ServerConfig,
    ) -> Result<Self, CpuSetError> {
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::resolve(flag, server, &allowed_cpus(), parallelism)
    }

    /// The plan for a config and the `--shards` flag, given the CPUs the process may run on
    /// (see [`allowed_cpus`]) and how many it may keep busy (`available_parallelism`, which
    /// also counts a cgroup CPU quota): the configured CPU set, which must lie within
    /// `allowed`, or all of `allowed`; the flag's count, else the config's, else one per CPU
    /// of the configured set, or without one, one per allowed CPU within the quota.
    pub fn resolve(
        flag: Option<usize>,
        server: &ServerConfig,
        allowed: &[usize],
        parallelism: usize,
    ) -> Result<Self, CpuSetError> {
        let cpus: Vec<usize> = match &server.cpus {
            Some(list) => {
                let outside: Vec<usize> = list
                    .cpus()
                    .iter()
                    .copied()
                    .filter(|c| !allowed.contains(c))
                    .collect();
                if !outside.is_empty() {
                    return Err(CpuSetError::NotAllowed {
                        outside,
                        allowed: allowed.to_vec(),
                    });
                }
                list.cpus().to_vec()
            }
            None if allowed.is_empty() => vec![0],
            None => allowed.to_vec(),
        };
        let default = match &server.cpus {
            Some(_) => cpus.len(),
            None => cpus.len().min(parallelism.max(1)),
        };
        let count = flag.or(server.shards).unwrap_or(default).max(1);
        Ok(Self { count, cpus })
    }

    /// The CPU shard `id` is pinned to.
    pub fn cpu_of(&self, id: usize) -> usize {
        self.cpus
            .get(id % self.cpus.len().max(1))
            .copied()
            .unwrap_or(0)
    }
}

/// The CPUs this process may run on (`sched_getaffinity`: respects `taskset`, cgroup
/// cpusets and offline CPUs), ascending. Falls back to `0..available_parallelism` if the
/// call fails.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for the calling thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    let cpus: Vec<usize> = if ok {
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    } else {
        cpus
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::CpuList;

    fn server(shards: Option<usize>, cpus: Option<&str>) -> ServerConfig {
        ServerConfig {
            shards,
            cpus: cpus.map(|c| CpuList::parse(c).unwrap()),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn defaults_to_one_shard_per_allowed_cpu() {
        let plan = ShardPlan::resolve(None, &server(None, None), &[0, 2, 5], 8).unwrap();
        assert_eq!(plan.count, 3);
        assert_eq!(plan.cpus, [0, 2, 5]);
        assert_eq!((plan.cpu_of(0), plan.cpu_of(2), plan.cpu_of(3)), (0, 5, 0));
    }

    #[test]
    fn a_cpu_set_sets_the_default_count() {
        let plan = ShardPlan::resolve(None, &server(None, Some("1-2")), &[0, 1, 2, 3], 1).unwrap();
        assert_eq!((plan.count, plan.cpus.clone()), (2, vec![1, 2]));
        let plan = ShardPlan::resolve(None, &server(Some(5), Some("3")), &[0, 3], 2).unwrap();
        assert_eq!((plan.count, plan.cpu_of(4)), (5, 3));
        let plan = ShardPlan::resolve(Some(1), &server(Some(5), Some("3")), &[3], 1).unwrap();
        assert_eq!(plan.count, 1);
    }

    #[test]
    fn a_cpu_outside_the_allowed_set_is_named() {
        let err =
            ShardPlan::resolve(None, &server(None, Some("0-3,6")), &[0, 1, 2, 3], 4).unwrap_err();
        assert_eq!(
            err,
            CpuSetError::NotAllowed {
                outside: vec![6],
                allowed: vec![0, 1, 2, 3]
            }
        );
        assert_eq!(
            err.to_string(),
            "[server] cpus names CPU(s) 6 that this process may not run on (allowed: 0-3)"
        );
    }

    #[test]
    fn without_a_cpu_set_a_cpu_quota_bounds_the_default_count() {
        // 64 CPUs allowed, a quota of 2 (`docker --cpus=2`, a Kubernetes limit): 2 shards.
        let allowed: Vec<usize> = (0..64).collect();
        let plan = ShardPlan::resolve(None, &server(None, None), &allowed, 2).unwrap();
        assert_eq!((plan.count, plan.cpu_of(1)), (2, 1));
    }

    #[test]
    fn zero_shards_is_one() {
        let plan = ShardPlan::resolve(Some(0), &server(None, None), &[0], 1).unwrap();
        assert_eq!(plan.count, 1);
    }

    #[test]
    fn the_allowed_set_is_read() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }
}
