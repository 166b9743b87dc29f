//! What the admin API answers questions about without reading files: the newest records
//! (their JSON lines, bounded by count) and tokens and cost per tenant, key and model in
//! hourly buckets over the last week. Both are fed by the log writer thread, off the
//! shards; the lock is shared by that thread and the admin listener only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use super::query::RecordFilter;
use super::record::RequestRecord;

/// Records kept for `GET /admin/requests` when the config does not say.
pub const DEFAULT_RECENT: usize = 10_000;
/// Hours of usage kept (a week).
const HOURS_KEPT: u64 = 24 * 7;
/// Most distinct names per dimension per hour; more are counted as `other`.
const MAX_NAMES_PER_HOUR: usize = 1_000;

/// The newest records and the usage ledger, fed by the writer thread.
pub struct RecordViews {
    recent: Mutex<VecDeque<Arc<str>>>,
    capacity: usize,
    usage: Mutex<UsageLedger>,
}

impl RecordViews {
    /// Views keeping the newest `capacity` records.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            recent: Mutex::new(VecDeque::with_capacity(capacity.min(DEFAULT_RECENT))),
            capacity: capacity.max(1),
            usage: Mutex::new(UsageLedger::default()),
        })
    }

    /// Adds a record (`line` is its JSON form), at `unix_ms`.
    pub fn add(&self, record: &RequestRecord, line: &str, unix_ms: u64) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= self.capacity {
                recent.pop_front();
            }
            recent.push_back(Arc::from(line));
        }
        if let Ok(mut usage) = self.usage.lock() {
            usage.add(record, unix_ms / 3_600_000);
        }
    }

    /// The newest records `filter` matches, oldest first, at most `limit`.
    pub fn query(&self, filter: &RecordFilter, limit: usize) -> Vec<Value> {
        // Copy the lines out, so the writer is held up only for the copy.
        let lines: Vec<Arc<str>> = match self.recent.lock() {
            Ok(recent) => recent.iter().cloned().collect(),
            Err(_) => return Vec::new(),
        };
        let mut found: Vec<Value> = lines
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| filter.matches(r))
            .take(limit)
            .collect();
        found.reverse();
        found
    }

    /// Tokens, cost and counts by `by` over the last `hours` up to `now_ms`.
    pub fn usage(&self, by: UsageBy, hours: u64, now_ms: u64) -> Vec<UsageRow> {
        match self.usage.lock() {
            Ok(u) => u.rows(by, hours, now_ms / 3_600_000),
            Err(_) => Vec::new(),
        }
    }
}

/// What usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageBy {
    /// The key's tenant (`none` without one).
    Tenant,
    /// The gateway key's name (`none` on an open gateway).
    Key,
    /// The alias asked for.
    Model,
}

impl UsageBy {
    /// Parses `tenant`, `key` or `model`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Its name in queries and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
            Self::Model => "model",
        }
    }

    const ALL: [UsageBy; 3] = [Self::Tenant, Self::Key, Self::Model];
}

/// Totals for one name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    /// The tenant, key or model.
    pub name: String,
    /// Requests.
    pub requests: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Input tokens.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

impl UsageRow {
    fn add(&mut self, other: &UsageRow) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cost_usd += other.cost_usd;
    }
}

/// One hour's totals per dimension and name.
type HourTotals = HashMap<(UsageBy, String), UsageRow>;

/// Hourly totals per dimension and name, for the last week.
#[derive(Default)]
struct UsageLedger {
    hours: VecDeque<(u64, HourTotals)>,
}

impl UsageLedger {
    fn add(&mut self, r: &RequestRecord, hour: u64) {
        if self.hours.back().is_none_or(|(h, _)| *h < hour) {
            self.hours.push_back((hour, HashMap::new()));
        }
        while self
            .hours
            .front()
            .is_some_and(|(h, _)| *h + HOURS_KEPT <= hour)
        {
            self.hours.pop_front();
        }
        // A record from an hour already closed (clock steps) goes to the newest bucket.
        let Some((_, bucket)) = self.hours.back_mut() else {
            return;
        };
        let row = UsageRow {
            name: String::new(),
            requests: 1,
            errors: u64::from(r.status >= 400 || r.error.is_some()),
            tokens_in: r.tokens_in.unwrap_or(0),
            tokens_out: r.tokens_out.unwrap_or(0),
            cost_usd: r.cost_usd.unwrap_or(0.0),
        };
        for by in UsageBy::ALL {
            let name = match by {
                UsageBy::Tenant => r.tenant.as_deref().map(str::to_string),
                UsageBy::Key => r.key.clone(),
                UsageBy::Model => r.model.clone(),
            }
            .unwrap_or_else(|| "none".to_string());
            let names = bucket.keys().filter(|(b, _)| *b == by).count();
            let key = if bucket.contains_key(&(by, name.clone())) || names < MAX_NAMES_PER_HOUR {
                (by, name)
            } else {
                (by, "other".to_string())
            };
            bucket.entry(key).or_default().add(&row);
        }
    }

    fn rows(&self, by: UsageBy, hours: u64, now_hour: u64) -> Vec<UsageRow> {
        let mut totals: HashMap<&str, UsageRow> = HashMap::new();
        for (hour, bucket) in &self.hours {
            if *hour + hours <= now_hour {
                continue;
            }
            for ((b, name), row) in bucket {
                if *b == by {
                    totals.entry(name).or_default().add(row);
                }
            }
        }
        let mut rows: Vec<UsageRow> = totals
            .into_iter()
            .map(|(name, mut row)| {
                row.name = name.to_string();
                row
            })
            .collect();
        rows.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(a.name.cmp(&b.name)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tenant: &str, status: u16, cost: f64) -> RequestRecord {
        let mut r = RequestRecord::started(id.to_string(), 0);
        r.tenant = Some(Arc::from(tenant));
        r.key = Some(format!("{tenant}-key"));
        r.model = Some("fast".into());
        r.status = status;
        r.tokens_in = Some(10);
        r.tokens_out = Some(5);
        r.cost_usd = Some(cost);
        r
    }

    fn add(v: &RecordViews, r: &RequestRecord, ms: u64) {
        v.add(r, &serde_json::to_string(r).unwrap(), ms);
    }

    #[test]
    fn the_newest_records_are_kept_and_queried() {
        let v = RecordViews::new(3);
        for i in 0..5 {
            add(&v, &record(&format!("r{i}"), "acme", 200, 0.0), 0);
        }
        let all = v.query(&RecordFilter::default(), 10);
        let ids: Vec<&str> = all
            .iter()
            .map(|r| r["request_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["r2", "r3", "r4"]);
        let one = v.query(
            &RecordFilter {
                request_id: Some("r3".into()),
                ..Default::default()
            },
            10,
        );
        assert_eq!(one.len(), 1);
        assert_eq!(v.query(&RecordFilter::default(), 2).len(), 2);
    }

    #[test]
    fn usage_sums_by_dimension_over_the_window() {
        let v = RecordViews::new(10);
        let hour = 3_600_000;
        add(&v, &record("a", "acme", 200, 0.5), 100 * hour);
        add(&v, &record("b", "acme", 429, 0.0), 100 * hour + 5);
        add(&v, &record("c", "beta", 200, 0.25), 120 * hour);
        let day = v.usage(UsageBy::Tenant, 24, 120 * hour);
        assert_eq!(day.len(), 2);
        assert_eq!(day[0].name, "acme");
        assert_eq!(
            (day[0].requests, day[0].errors, day[0].tokens_in),
            (2, 1, 20)
        );
        assert!((day[0].cost_usd - 0.5).abs() < 1e-9);
        let hour_only = v.usage(UsageBy::Tenant, 1, 120 * hour);
        assert_eq!(hour_only.len(), 1);
        assert_eq!(hour_only[0].name, "beta");
        let by_key = v.usage(UsageBy::Key, 24, 120 * hour);
        assert!(by_key.iter().any(|r| r.name == "beta-key"));
        // A week later, the old hours are gone.
        add(&v, &record("d", "gamma", 200, 0.0), 300 * hour);
        assert_eq!(v.usage(UsageBy::Tenant, 24 * 7, 300 * hour).len(), 1);
    }
}
