//! `infergate doctor`: checks what an operator gets wrong on a node before the gateway
//! serves there, one line per check (`ok`, `warn` or `FAIL`, what was found, and the fix),
//! and fails (exit 1) when any check fails.
//!
//! Each check is a small function of its inputs (limits, probe results, the environment
//! lookup, the time), so tests simulate every failure; [`run`] gathers the real inputs.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::Config;

pub mod clock;
pub mod cpus;
pub mod limits;
pub mod model;
pub mod providers;
pub mod uring;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// As it should be.
    Ok,
    /// The gateway works, worse than it could (a fallback, a lower cap).
    Warn,
    /// Something the operator configured will not work.
    Fail,
}

impl Level {
    /// The line's first word.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// What was checked (`io_uring`, `provider openai reachable`, ...).
    pub check: String,
    /// What was found.
    pub detail: String,
    /// What to do about it (warn and fail findings).
    pub fix: Option<String>,
}

impl Finding {
    /// A passing check.
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            level: Level::Ok,
            check: check.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warn(
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Warn,
            check: check.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure with its fix.
    pub fn fail(
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Fail,
            check: check.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The report line: `LEVEL  check: detail; fix: ...`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{:<4}  {}: {}",
            self.level.as_str(),
            self.check,
            self.detail
        );
        if let Some(fix) = &self.fix {
            line.push_str("; fix: ");
            line.push_str(fix);
        }
        line
    }
}

/// Runs every check for the config at `config` (default `config/quickstart.toml`, as
/// `serve` uses) and prints one line per check to stdout; `Err` when a check failed.
#[allow(clippy::print_stdout)] // The report is the command's output.
pub fn run(config: Option<&Path>, shards_flag: Option<usize>) -> Result<(), String> {
    let path = config.unwrap_or(Path::new("config/quickstart.toml"));
    let mut findings = Vec::new();
    let mut say = |f: Finding| {
        println!("{}", f.line());
        findings.push(f);
    };
    let cfg = match Config::load(path) {
        Ok(cfg) => {
            say(Finding::ok("config", format!("{} parses", path.display())));
            Some(cfg)
        }
        Err(e) => {
            say(Finding::fail(
                "config",
                e.to_string(),
                "fix the file (`infergate check-config FILE` says the same); checks that need it are skipped",
            ));
            None
        }
    };
    let table = cfg
        .as_ref()
        .map(|cfg| crate::route::RouteTable::compile(cfg).map_err(|e| e.to_string()));
    if let Some(Err(e)) = &table {
        say(Finding::fail(
            "config",
            e.clone(),
            "fix the file (`infergate check-config FILE` says the same)",
        ));
    }

    let allowed = crate::shard::allowed_cpus();
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = cfg.as_ref().map(|cfg| {
        crate::shard::ShardPlan::resolve(shards_flag, &cfg.server, &allowed, parallelism)
    });
    let shards = match &plan {
        Some(Ok(plan)) => plan.count,
        _ => shards_flag.unwrap_or(allowed.len()).max(1),
    };

    let forced_epoll = crate::shard::DriverChoice::from_env() == crate::shard::DriverChoice::Epoll;
    say(uring::check_io_uring(&uring::UringProbe {
        setup: uring::try_io_uring_setup(),
        disabled_sysctl: uring::read_io_uring_disabled(),
        forced_epoll,
    }));
    say(uring::check_memlock(
        limits::soft_limit(libc::RLIMIT_MEMLOCK),
        uring::kernel_version(),
        shards,
    ));
    if let Some(cfg) = &cfg {
        say(limits::check_open_files(
            limits::hard_limit(libc::RLIMIT_NOFILE),
            shards,
            cfg.server.max_connections_per_shard,
        ));
        say(cpus::check_cpus(
            shards_flag,
            &cfg.server,
            &allowed,
            parallelism,
        ));
        if let Some(embedder) = model::embedder_in_use(cfg) {
            say(model::check_model(
                &embedder.model_dir,
                model::load_and_embed,
            ));
            say(model::check_cuda(embedder.backend, model::probe_cuda));
        }
    }

    let mut peer_dates = Vec::new();
    if let Some(Ok(table)) = &table {
        let env = |var: &str| std::env::var(var).ok();
        let mut listed: Vec<_> = table.providers.values().collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        for p in &listed {
            say(providers::check_key(&p.name, &p.credential, &env));
        }
        for (p, reached) in providers::reach_all(&listed, REACH_TIMEOUT) {
            if let Ok(r) = &reached {
                if let Some(date) = r.date {
                    peer_dates.push((p.clone(), date, r.observed_at));
                }
            }
            say(providers::check_reach(&p, reached));
        }
    }
    say(clock::check_clock(
        SystemTime::now(),
        clock::built_at(),
        &peer_dates,
    ));

    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (fails, warns) = (count(Level::Fail), count(Level::Warn));
    println!(
        "doctor: {} ok, {warns} warn, {fails} fail",
        findings.len() - fails - warns
    );
    if fails > 0 {
        return Err(format!("{fails} check(s) failed"));
    }
    Ok(())
}

/// The longest a provider's connect, TLS handshake and `HEAD /` may take in the doctor.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_level_check_detail_and_fix() {
        assert_eq!(
            Finding::ok("io_uring", "works").line(),
            "ok    io_uring: works"
        );
        assert_eq!(
            Finding::fail("clock", "behind", "enable NTP").line(),
            "FAIL  clock: behind; fix: enable NTP"
        );
        assert_eq!(Finding::warn("a", "b", "c").level, Level::Warn);
    }
}
