//! The configured CPU set against the CPUs the process may run on.

use super::Finding;
use crate::config::{compact_cpu_list, ServerConfig};
use crate::shard::ShardPlan;

/// The CPU line: `allowed` is the process's allowed set (`shard::allowed_cpus`),
/// `parallelism` its available parallelism (a cgroup CPU quota included).
pub fn check_cpus(
    flag: Option<usize>,
    server: &ServerConfig,
    allowed: &[usize],
    parallelism: usize,
) -> Finding {
    const CHECK: &str = "cpus";
    let plan = match ShardPlan::resolve(flag, server, allowed, parallelism) {
        Ok(plan) => plan,
        Err(e) => {
            return Finding::fail(
                CHECK,
                e.to_string(),
                format!(
                    "name CPUs within {} in [server] cpus (see `taskset -cp $$` or the cgroup's cpuset.cpus.effective), or remove it to use them all",
                    compact_cpu_list(allowed)
                ),
            )
        }
    };
    let cpus = compact_cpu_list(&plan.cpus);
    if plan.count > plan.cpus.len() {
        return Finding::warn(
            CHECK,
            format!(
                "{} shards share {} CPU(s) ({cpus}): shards on one CPU take turns",
                plan.count,
                plan.cpus.len()
            ),
            format!(
                "set [server] shards to at most {} or widen [server] cpus",
                plan.cpus.len()
            ),
        );
    }
    Finding::ok(
        CHECK,
        format!(
            "{} shard(s) pinned to CPU(s) {cpus} (allowed: {})",
            plan.count,
            compact_cpu_list(allowed)
        ),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::CpuList;
    use crate::doctor::Level;

    fn server(shards: Option<usize>, cpus: &str) -> ServerConfig {
        ServerConfig {
            shards,
            cpus: Some(CpuList::parse(cpus).unwrap()),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn a_cpu_outside_the_allowed_set_fails_by_name() {
        let f = check_cpus(None, &server(None, "0-3,6"), &[0, 1, 2, 3], 4);
        assert_eq!(f.level, Level::Fail);
        assert!(f.detail.contains("CPU(s) 6 "), "{f:?}");
        assert!(f.fix.unwrap().contains("within 0-3"));
    }

    #[test]
    fn more_shards_than_cpus_is_a_warning() {
        let f = check_cpus(None, &server(Some(4), "1"), &[0, 1], 2);
        assert_eq!(f.level, Level::Warn);
        assert!(f.detail.starts_with("4 shards share 1 CPU(s)"), "{f:?}");
    }

    #[test]
    fn a_fitting_set_is_ok() {
        let f = check_cpus(None, &server(None, "0-1"), &[0, 1, 2], 3);
        assert_eq!(f.level, Level::Ok);
        assert_eq!(f.detail, "2 shard(s) pinned to CPU(s) 0-1 (allowed: 0-2)");
        let f = check_cpus(None, &ServerConfig::default(), &[0, 1], 2);
        assert_eq!(f.level, Level::Ok);
    }
}
