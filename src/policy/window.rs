//! Calendar windows in UTC for budgets (`per = "minute" | "hour" | "day" | "month" |
//! "total"`): which window an instant falls in, and when the next one starts.
//!
//! A window is named by an id that only grows with time (minutes, hours or days since the
//! epoch; months as `year * 12 + month - 1`; `total` is always 0), so comparing ids says which
//! window is newer. The civil-date arithmetic is Howard Hinnant's, as in
//! `observe::rfc3339_millis`.

use std::fmt;
use std::str::FromStr;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;

/// The span a budget's spend counts over before it starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// A calendar minute in UTC.
    Minute,
    /// A calendar hour in UTC.
    Hour,
    /// A calendar day in UTC.
    Day,
    /// A calendar month in UTC.
    Month,
    /// Never resets.
    Total,
}

/// A `per` value that names no window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget window {0:?} is not one of minute, hour, day, month, total")]
pub struct UnknownWindow(pub String);

impl FromStr for Window {
    type Err = UnknownWindow;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minute" => Ok(Self::Minute),
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            "total" => Ok(Self::Total),
            other => Err(UnknownWindow(other.to_string())),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Total => "total",
        })
    }
}

impl Window {
    /// The id of the window that holds `unix_ms`; later windows have larger ids.
    pub fn id(self, unix_ms: u64) -> u64 {
        match self {
            Self::Minute => unix_ms / MINUTE_MS,
            Self::Hour => unix_ms / HOUR_MS,
            Self::Day => unix_ms / DAY_MS,
            Self::Month => {
                let (y, m, _) = civil_from_days(unix_ms / DAY_MS);
                y * 12 + (m - 1)
            }
            Self::Total => 0,
        }
    }

    /// When the window after `id` starts (Unix ms); `None` for `total`.
    pub fn next_start_ms(self, id: u64) -> Option<u64> {
        let next = id.checked_add(1)?;
        match self {
            Self::Minute => next.checked_mul(MINUTE_MS),
            Self::Hour => next.checked_mul(HOUR_MS),
            Self::Day => next.checked_mul(DAY_MS),
            Self::Month => days_from_civil(next / 12, next % 12 + 1, 1).checked_mul(DAY_MS),
            Self::Total => None,
        }
    }

    /// Milliseconds from `unix_ms` until its window ends; `None` for `total`.
    pub fn resets_in_ms(self, unix_ms: u64) -> Option<u64> {
        self.next_start_ms(self.id(unix_ms))
            .map(|next| next.saturating_sub(unix_ms))
    }
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date on or after it.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y.saturating_sub(1) } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T12:00:00.123Z
    const T: u64 = 1_795_435_200_123;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(951_782_400_000 / DAY_MS), (2000, 2, 29));
        assert_eq!(civil_from_days(T / DAY_MS), (2026, 11, 23));
        for days in (0..80_000).step_by(17) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn windows_end_on_calendar_boundaries() {
        assert_eq!(Window::Minute.resets_in_ms(T), Some(60_000 - 123));
        assert_eq!(Window::Hour.resets_in_ms(T), Some(HOUR_MS - 123));
        assert_eq!(Window::Day.resets_in_ms(T), Some(12 * HOUR_MS - 123));
        // From 23 November noon to 1 December midnight: 7.5 days.
        assert_eq!(
            Window::Month.resets_in_ms(T),
            Some(7 * DAY_MS + 12 * HOUR_MS - 123)
        );
        assert_eq!(Window::Total.resets_in_ms(T), None);
        assert_eq!(Window::Total.id(T), 0);
    }

    #[test]
    fn months_roll_over_at_the_year_end_and_in_leap_februaries() {
        // 2026-12-31T23:59:59.999Z and the next millisecond.
        let dec31 = days_from_civil(2027, 1, 1) * DAY_MS - 1;
        assert_eq!(Window::Month.id(dec31), 2026 * 12 + 11);
        assert_eq!(Window::Month.id(dec31 + 1), 2027 * 12);
        assert_eq!(Window::Month.resets_in_ms(dec31), Some(1));
        let feb2028 = days_from_civil(2028, 2, 10) * DAY_MS;
        assert_eq!(Window::Month.resets_in_ms(feb2028), Some(20 * DAY_MS));
        let ids: Vec<u64> = (0..40)
            .map(|i| Window::Month.id(dec31 + i * 10 * DAY_MS))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "ids only grow");
    }

    #[test]
    fn parses_per() {
        assert_eq!("day".parse::<Window>(), Ok(Window::Day));
        assert_eq!(Window::Month.to_string(), "month");
        assert!("week".parse::<Window>().is_err());
    }
}
