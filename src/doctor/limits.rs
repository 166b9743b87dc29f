//! The open-files limit against the connections the config allows.

use super::Finding;

/// The open-files line. `hard` is the hard `RLIMIT_NOFILE` (`None`: unlimited): the gateway
/// raises its soft limit to it at start, and holds every shard's connections within it
/// (`shard::connections_within`).
pub fn check_open_files(hard: Option<u64>, shards: usize, per_shard: usize) -> Finding {
    const CHECK: &str = "open files";
    let Some(hard) = hard else {
        return Finding::ok(CHECK, "the open-files limit is unlimited");
    };
    let cap = crate::shard::connections_within(hard, shards);
    if cap >= per_shard {
        return Finding::ok(
            CHECK,
            format!("limit {hard} holds max_connections_per_shard = {per_shard} on each of {shards} shard(s)"),
        );
    }
    // Two descriptors per connection (client and upstream) plus the reserve kept for
    // listeners and logs.
    let need = per_shard
        .saturating_mul(shards)
        .saturating_mul(2)
        .saturating_add(128)
        .max(512);
    Finding::warn(
        CHECK,
        format!(
            "limit {hard} holds only {cap} connections per shard, below max_connections_per_shard = {per_shard}; the gateway uses the lower cap and answers 503 beyond it"
        ),
        format!("raise it to at least {need}: LimitNOFILE={need} (systemd) or ulimit -Hn {need}, or lower max_connections_per_shard"),
    )
}

/// A resource's soft limit (`None`: unlimited or unreadable).
pub fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    get(resource).and_then(|(soft, _)| soft)
}

/// A resource's hard limit (`None`: unlimited or unreadable).
pub fn hard_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    get(resource).and_then(|(_, hard)| hard)
}

fn get(resource: libc::__rlimit_resource_t) -> Option<(Option<u64>, Option<u64>)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed in.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return None;
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Some((finite(lim.rlim_cur), finite(lim.rlim_max)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn enough_descriptors_is_ok() {
        let f = check_open_files(Some(1 << 20), 4, 16_384);
        assert_eq!(f.level, Level::Ok, "{f:?}");
        assert_eq!(check_open_files(None, 4, 16_384).level, Level::Ok);
    }

    #[test]
    fn a_low_limit_says_the_cap_and_the_number_to_set() {
        let f = check_open_files(Some(1024), 2, 16_384);
        assert_eq!(f.level, Level::Warn);
        assert!(f.detail.contains("only 224 connections per shard"), "{f:?}");
        let fix = f.fix.unwrap();
        assert!(fix.contains("LimitNOFILE=65664"), "{fix}");
        // The number the fix names is enough.
        assert_eq!(check_open_files(Some(65_664), 2, 16_384).level, Level::Ok);
    }

    #[test]
    fn real_limits_are_read() {
        assert!(get(libc::RLIMIT_NOFILE).is_some());
    }
}
