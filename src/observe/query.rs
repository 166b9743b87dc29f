//! Which records a question is about: one filter shared by `GET /admin/requests` (over the
//! recent records in memory) and `infergate logs` (over the JSONL files), applied to
//! records in their JSON form, so both read exactly what the log holds.

use serde_json::Value;

use super::record::rfc3339_millis;

/// Most records one query returns.
pub const MAX_LIMIT: usize = 10_000;

/// A question about records; every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    /// The request id.
    pub request_id: Option<String>,
    /// The gateway key's name.
    pub key: Option<String>,
    /// The key's tenant.
    pub tenant: Option<String>,
    /// The agent run id.
    pub run: Option<String>,
    /// The alias asked for, or the upstream model that answered.
    pub model: Option<String>,
    /// The status sent.
    pub status: Option<StatusMatch>,
    /// Only requests that failed (status ≥ 400, or an error noted on a 2xx stream).
    pub errors: bool,
    /// Only requests that started at or after this time (RFC 3339, UTC, as records write it).
    pub since: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// A status, exact (`429`) or by class (`5xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// This code.
    Exact(u16),
    /// `N`xx.
    Class(u16),
}

/// A filter value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `status` is not a code or a class.
    #[error("status must be a code (429) or a class (5xx), not {0:?}")]
    Status(String),
    /// `since` is not a time.
    #[error("since must be an RFC 3339 time (2026-12-07T10:00:00Z), a date, or an age (90s, 15m, 2h, 7d), not {0:?}")]
    Since(String),
    /// `limit` is not a count.
    #[error("limit must be a number from 1 to {MAX_LIMIT}, not {0:?}")]
    Limit(String),
    /// An unknown field.
    #[error(
        "unknown filter {0:?} (request_id, key, tenant, run, model, status, errors, since, limit)"
    )]
    Unknown(String),
}

impl StatusMatch {
    /// Parses `429` or `4xx`.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let bad = || FilterError::Status(s.to_string());
        let lower = s.trim().to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) => Ok(Self::Class(c)),
                _ => Err(bad()),
            };
        }
        match lower.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(Self::Exact(code)),
            _ => Err(bad()),
        }
    }

    fn matches(self, status: u64) -> bool {
        match self {
            Self::Exact(c) => status == u64::from(c),
            Self::Class(c) => status / 100 == u64::from(c),
        }
    }
}

impl RecordFilter {
    /// Sets one field from its name and text (a query parameter or a CLI option).
    pub fn set(&mut self, name: &str, value: &str, now_ms: u64) -> Result<(), FilterError> {
        let text = || Some(value.to_string()).filter(|v| !v.is_empty());
        match name {
            "request_id" | "id" => self.request_id = text(),
            "key" => self.key = text(),
            "tenant" => self.tenant = text(),
            "run" | "run_id" => self.run = text(),
            "model" => self.model = text(),
            "status" => self.status = Some(StatusMatch::parse(value)?),
            "errors" => self.errors = !matches!(value, "false" | "0" | "no"),
            "since" => self.since = Some(parse_since(value, now_ms)?),
            "limit" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| FilterError::Limit(value.to_string()))?;
                self.limit = Some(n);
            }
            other => return Err(FilterError::Unknown(other.to_string())),
        }
        Ok(())
    }

    /// Whether a record (in its JSON form) is one asked about.
    pub fn matches(&self, r: &Value) -> bool {
        let field = |name: &str| r.get(name).and_then(Value::as_str);
        let same = |want: &Option<String>, name: &str| {
            want.as_deref().is_none_or(|w| field(name) == Some(w))
        };
        if !(same(&self.request_id, "request_id")
            && same(&self.key, "key")
            && same(&self.tenant, "tenant")
            && same(&self.run, "run_id"))
        {
            return false;
        }
        if let Some(m) = &self.model {
            if field("model") != Some(m) && field("upstream_model") != Some(m) {
                return false;
            }
        }
        let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
        if self.status.is_some_and(|s| !s.matches(status)) {
            return false;
        }
        if self.errors && status < 400 && r.get("error").is_none_or(Value::is_null) {
            return false;
        }
        if let Some(since) = &self.since {
            // Records write UTC times of one fixed width: text order is time order.
            if field("time").is_none_or(|t| t < since.as_str()) {
                return false;
            }
        }
        true
    }

    /// How many to return.
    pub fn limit_or(&self, default: usize) -> usize {
        self.limit.unwrap_or(default).min(MAX_LIMIT)
    }
}

/// `since` as the record time format: an RFC 3339 UTC time or a date (taken as given), or
/// an age before `now_ms` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_since(value: &str, now_ms: u64) -> Result<String, FilterError> {
    let bad = || FilterError::Since(value.to_string());
    let v = value.trim();
    if let Some(ms) = age_ms(v) {
        return Ok(rfc3339_millis(now_ms.saturating_sub(ms)));
    }
    // `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.fff]Z` padded to the records' millisecond form.
    if shaped(v, "dddd-dd-dd") {
        return Ok(format!("{v}T00:00:00.000Z"));
    }
    let (Some(head), Some(rest)) = (v.get(..19), v.get(19..)) else {
        return Err(bad());
    };
    if !shaped(head, "dddd-dd-ddTdd:dd:dd") {
        return Err(bad());
    }
    let frac = rest.strip_suffix('Z').ok_or_else(bad)?;
    let millis = match frac.strip_prefix('.') {
        None if frac.is_empty() => "000".to_string(),
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let kept: String = f.chars().take(3).collect();
            format!("{kept:0<3}")
        }
        _ => return Err(bad()),
    };
    Ok(format!("{head}.{millis}Z"))
}

/// An age such as `90s`, `15m`, `2h`, `7d`, in milliseconds.
fn age_ms(v: &str) -> Option<u64> {
    let unit: u64 = match v.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let n: u64 = v.get(..v.len() - 1)?.parse().ok()?;
    Some(n.saturating_mul(unit))
}

/// Whether `v` has the shape of `template` (`d`: a digit; anything else: itself).
fn shaped(v: &str, template: &str) -> bool {
    v.len() == template.len()
        && v.bytes().zip(template.bytes()).all(|(c, t)| match t {
            b'd' => c.is_ascii_digit(),
            t => c == t,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({"request_id": "r1", "time": "2026-12-07T10:00:00.000Z", "key": "ci", "tenant": "acme",
               "run_id": "run-9", "model": "fast", "upstream_model": "gpt-4o-mini", "status": 429})
    }

    fn filter(pairs: &[(&str, &str)]) -> RecordFilter {
        let mut f = RecordFilter::default();
        for (k, v) in pairs {
            f.set(k, v, 1_796_000_000_000).unwrap();
        }
        f
    }

    #[test]
    fn every_set_field_must_match() {
        let r = record();
        assert!(filter(&[]).matches(&r));
        assert!(filter(&[("key", "ci"), ("tenant", "acme"), ("run", "run-9")]).matches(&r));
        assert!(filter(&[("model", "gpt-4o-mini")]).matches(&r));
        assert!(filter(&[("model", "fast"), ("status", "4xx"), ("errors", "true")]).matches(&r));
        assert!(!filter(&[("key", "other")]).matches(&r));
        assert!(!filter(&[("status", "200")]).matches(&r));
        assert!(!filter(&[("status", "5xx")]).matches(&r));
        let ok = json!({"status": 200, "time": "2026-12-07T10:00:00.000Z"});
        assert!(!filter(&[("errors", "1")]).matches(&ok));
        let interrupted = json!({"status": 200, "error": "upstream_stream_reset"});
        assert!(filter(&[("errors", "1")]).matches(&interrupted));
    }

    #[test]
    fn since_takes_times_dates_and_ages() {
        let r = record();
        assert!(filter(&[("since", "2026-12-07T09:59:59Z")]).matches(&r));
        assert!(filter(&[("since", "2026-12-07T10:00:00Z")]).matches(&r));
        assert!(!filter(&[("since", "2026-12-07T10:00:00.001Z")]).matches(&r));
        assert!(filter(&[("since", "2026-12-07")]).matches(&r));
        assert!(!filter(&[("since", "2026-12-08")]).matches(&r));
        let now = 1_796_000_000_000;
        assert_eq!(
            parse_since("1h", now).unwrap(),
            rfc3339_millis(now - 3_600_000)
        );
        assert_eq!(
            parse_since("2026-12-07T10:00:00.5Z", now).unwrap(),
            "2026-12-07T10:00:00.500Z"
        );
        for bad in ["yesterday", "2026-12-07T10:00", "12h ago", "2026-13"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let mut f = RecordFilter::default();
        assert!(matches!(
            f.set("status", "2x", 0),
            Err(FilterError::Status(_))
        ));
        assert!(matches!(f.set("limit", "0", 0), Err(FilterError::Limit(_))));
        assert!(matches!(
            f.set("colour", "red", 0),
            Err(FilterError::Unknown(_))
        ));
        f.set("limit", "5", 0).unwrap();
        assert_eq!(f.limit_or(100), 5);
    }
}
