//! Clock sanity: the system time must not be before this binary was built, and should
//! agree with the providers' clocks (their `Date` headers). A clock far off breaks TLS
//! (certificates look expired or not yet valid), AWS SigV4 (refused beyond 5 minutes),
//! budget windows and the request log's timestamps.

use std::time::{Duration, SystemTime};

use super::Finding;

/// A skew beyond this is a failure (AWS refuses SigV4 requests more than 5 minutes off).
pub const FAIL_SKEW: Duration = Duration::from_secs(300);
/// A skew beyond this is a warning (an HTTP `Date` has 1-second resolution).
pub const WARN_SKEW: Duration = Duration::from_secs(60);
/// A clock this far before the build time is wrong, not a build machine in another zone.
const BUILD_SLACK: Duration = Duration::from_secs(24 * 3600);

/// When this binary was built (see build.rs).
pub fn built_at() -> SystemTime {
    let secs: u64 = env!("INFERGATE_BUILD_UNIX").parse().unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// The clock line: `now` is the system time, `built` the build time, `peers` the providers'
/// `Date` headers with the local time each was read at.
pub fn check_clock(
    now: SystemTime,
    built: SystemTime,
    peers: &[(String, SystemTime, SystemTime)],
) -> Finding {
    const CHECK: &str = "clock";
    const FIX: &str =
        "synchronise the clock: timedatectl set-ntp true (systemd-timesyncd) or run chrony/ntpd";
    if now + BUILD_SLACK < built {
        return Finding::fail(
            CHECK,
            format!(
                "the system time ({}) is before this binary was built ({})",
                httpdate::fmt_http_date(now),
                httpdate::fmt_http_date(built)
            ),
            FIX,
        );
    }
    let worst = peers
        .iter()
        .map(|(name, date, seen)| (name, skew(*date, *seen)))
        .max_by_key(|(_, s)| *s);
    match worst {
        None => Finding::ok(
            CHECK,
            "not before the build date (no provider answered with a Date header to compare)",
        ),
        Some((name, s)) if s > FAIL_SKEW => Finding::fail(
            CHECK,
            format!("{} s off provider {name}'s clock", s.as_secs()),
            format!("{FIX}; AWS refuses signed requests more than 5 minutes off"),
        ),
        Some((name, s)) if s > WARN_SKEW => Finding::warn(
            CHECK,
            format!("{} s off provider {name}'s clock", s.as_secs()),
            FIX,
        ),
        Some((_, s)) => Finding::ok(
            CHECK,
            format!(
                "within {} s of {} provider clock(s), not before the build date",
                s.as_secs(),
                peers.len()
            ),
        ),
    }
}

fn skew(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).unwrap_or_else(|e| e.duration())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const BUILT: u64 = 1_780_000_000;

    #[test]
    fn a_clock_before_the_build_fails() {
        let f = check_clock(at(1_000_000_000), at(BUILT), &[]);
        assert_eq!(f.level, Level::Fail);
        assert!(f.detail.contains("before this binary was built"), "{f:?}");
        assert!(f.fix.unwrap().contains("timedatectl"));
        // A few hours before (a build machine's clock ahead) is tolerated.
        assert_eq!(
            check_clock(at(BUILT - 3600), at(BUILT), &[]).level,
            Level::Ok
        );
    }

    #[test]
    fn provider_dates_bound_the_skew() {
        let now = at(BUILT + 1000);
        let peer = |name: &str, date: u64| (name.to_string(), at(date), now);
        let f = check_clock(now, at(BUILT), &[peer("a", BUILT + 1001)]);
        assert_eq!(f.level, Level::Ok, "{f:?}");
        let f = check_clock(
            now,
            at(BUILT),
            &[peer("a", BUILT + 1001), peer("b", BUILT + 1090)],
        );
        assert_eq!(f.level, Level::Warn);
        assert_eq!(f.detail, "90 s off provider b's clock");
        let f = check_clock(now, at(BUILT), &[peer("a", BUILT + 100)]);
        assert_eq!(f.level, Level::Fail);
        assert!(f.fix.unwrap().contains("5 minutes"));
    }

    #[test]
    fn the_build_time_is_recorded() {
        assert!(built_at() > at(1_700_000_000));
        assert!(built_at() <= SystemTime::now() + BUILD_SLACK);
    }
}
