//! What the charts draw, computed from the report (and from loadgen's HDR histograms),
//! separate from the drawing so it can be tested without looking at pixels.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::scenario::{RateResult, ScenarioReport};

/// Highest percentile drawn: 99.99 (x = 4 on the `log10(1 / (1 - p))` axis).
pub const MAX_PERCENTILE: f64 = 99.99;

/// Points per decade of `1 / (1 - p)` on the spectrum.
const POINTS_PER_DECADE: u32 = 20;

/// One point of a latency percentile spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// Percentile, 0–99.99.
    pub percentile: f64,
    /// Latency at that percentile, µs.
    pub latency_us: u64,
}

/// A named line of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry: the target's name.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// The x coordinate of percentile `p` (0–100) on the HDR axis: `log10(1 / (1 - p/100))`,
/// so 0% is 0, 90% is 1, 99% is 2, 99.9% is 3 and 99.99% is 4.
pub fn percentile_x(percentile: f64) -> f64 {
    let p = (percentile / 100.0).clamp(0.0, MAX_PERCENTILE / 100.0);
    -(1.0 - p).log10()
}

/// The axis label at x (an integer decade: `0%`, `90%`, `99%`, `99.9%`, `99.99%`; empty
/// between decades).
pub fn percentile_label(x: f64) -> String {
    let decade = x.round();
    if (x - decade).abs() > 1e-6 || decade < 0.0 {
        return String::new();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-decade));
    let digits = (decade as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

/// The latency percentile spectrum of `latency` (µs), HDR style: points evenly spaced on
/// the `log10(1 / (1 - p))` axis from 0% up to 99.99%, stopping at the finest percentile
/// the sample resolves (`1 / (1 - p)` ≤ the number of values), then the maximum.
pub fn spectrum(latency: &Histogram<u64>) -> Vec<SpectrumPoint> {
    let count = latency.len();
    if count == 0 {
        return Vec::new();
    }
    let finest = (count as f64).log10();
    let mut points = Vec::new();
    for step in 0..=4 * POINTS_PER_DECADE {
        let x = f64::from(step) / f64::from(POINTS_PER_DECADE);
        if x > finest + 1e-9 {
            break;
        }
        let quantile = (1.0 - 10f64.powf(-x)).min(MAX_PERCENTILE / 100.0);
        points.push(SpectrumPoint {
            percentile: 100.0 * quantile,
            latency_us: latency.value_at_quantile(quantile),
        });
    }
    // The last point the sample can show: its maximum, at the finest percentile.
    let last = (100.0 * (1.0 - 1.0 / count as f64)).min(MAX_PERCENTILE);
    if points.last().is_some_and(|p| p.percentile < last - 1e-9) {
        points.push(SpectrumPoint {
            percentile: last,
            latency_us: latency.max(),
        });
    }
    points
}

/// The spectrum chart of one load: one series per target, x on the HDR axis, y in µs.
pub fn spectrum_series(run: &RateResult) -> Vec<Series> {
    run.paths
        .iter()
        .filter(|p| !p.latency_spectrum.is_empty())
        .map(|p| Series {
            name: p.path.clone(),
            points: p
                .latency_spectrum
                .iter()
                .map(|s| (percentile_x(s.percentile), s.latency_us.max(1) as f64))
                .collect(),
        })
        .collect()
}

/// CPU µs per request by offered rate (open-loop runs only), one series per target that
/// has a process to measure, in the order the targets were measured.
pub fn cpu_series(report: &ScenarioReport) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for run in &report.runs {
        for path in &run.paths {
            let (Some(rate), Some(cpu)) = (path.report.target_rate, path.cpu_us_per_request) else {
                continue;
            };
            match series.iter_mut().find(|s| s.name == path.path) {
                Some(s) => s.points.push((rate, cpu)),
                None => series.push(Series {
                    name: path.path.clone(),
                    points: vec![(rate, cpu)],
                }),
            }
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

/// A file-name-safe slug of a run's mode: `open-loop 1000 req/s` → `open-loop-1000-rps`.
pub fn mode_slug(mode: &str) -> String {
    let text = mode.replace("req/s", "rps");
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_string()
}

/// Smallest and largest y of all series, for the axis (None when there are no points).
pub fn y_range(series: &[Series]) -> Option<(f64, f64)> {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    ys.fold(None, |acc, y| match acc {
        None => Some((y, y)),
        Some((lo, hi)) => Some((lo.min(y), hi.max(y))),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::loadgen::Report;
    use crate::scenario::PathResult;

    #[test]
    fn the_axis_puts_each_nine_one_decade_further() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.0) - 2.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        assert!((percentile_x(99.99) - 4.0).abs() < 1e-9);
        // Beyond 99.99 is clamped there.
        assert!((percentile_x(100.0) - 4.0).abs() < 1e-9);
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert_eq!(percentile_label(2.5), "");
    }

    fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn the_spectrum_follows_the_histogram_up_to_what_the_sample_resolves() {
        // 100,000 values 1..=100000 µs: p% is about p/100 × 100000.
        let h = histogram(1..=100_000);
        let points = spectrum(&h);
        assert_eq!(points.len(), 81, "0 to 4 decades, 20 points each");
        assert_eq!(points[0].percentile, 0.0);
        assert!((points[80].percentile - 99.99).abs() < 1e-9);
        for w in points.windows(2) {
            assert!(w[0].percentile < w[1].percentile);
            assert!(w[0].latency_us <= w[1].latency_us);
        }
        let at = |p: f64| {
            points
                .iter()
                .find(|s| (s.percentile - p).abs() < 1e-6)
                .unwrap()
                .latency_us
        };
        // HDR's 3 significant digits: within 0.1%.
        assert!((at(90.0) as f64 - 90_000.0).abs() <= 90.0, "{}", at(90.0));
        assert!((at(99.0) as f64 - 99_000.0).abs() <= 99.0);
        assert!((at(99.9) as f64 - 99_900.0).abs() <= 100.0);

        // 500 values resolve up to 99.8%: points up to x = 2.65, then the maximum there.
        let h = histogram((1..=500).map(|v| v * 10));
        let points = spectrum(&h);
        let last = points.last().unwrap();
        assert!((last.percentile - 99.8).abs() < 1e-9);
        assert_eq!(last.latency_us, h.max());
        assert!(points[points.len() - 2].percentile < 99.8);
        assert!(spectrum(&histogram([])).is_empty());
    }

    fn path(name: &str, rate: Option<f64>, cpu: Option<f64>) -> PathResult {
        let target = crate::loadgen::Target::parse("http://127.0.0.1:1").unwrap();
        let mut config = crate::loadgen::LoadgenConfig::new(target, "http://127.0.0.1:1");
        config.mode = match rate {
            Some(rate) => crate::loadgen::Mode::OpenLoop { rate },
            None => crate::loadgen::Mode::ClosedLoop { connections: 4 },
        };
        let report: Report = Report::new_empty(&config);
        PathResult {
            path: name.into(),
            pid: None,
            cpu_us_per_request: cpu,
            threads: Vec::new(),
            latency_spectrum: vec![
                SpectrumPoint {
                    percentile: 0.0,
                    latency_us: 0,
                },
                SpectrumPoint {
                    percentile: 99.0,
                    latency_us: 250,
                },
            ],
            report,
        }
    }

    fn report(runs: Vec<RateResult>) -> ScenarioReport {
        ScenarioReport {
            stream: false,
            body_bytes: 1024,
            duration_s: 1.0,
            load_cpu: 0,
            proxy_cpu: 1,
            mock_url: "http://127.0.0.1:1".into(),
            notes: Vec::new(),
            runs,
            syscalls: None,
        }
    }

    #[test]
    fn cpu_lines_have_one_point_per_open_loop_rate_and_skip_direct() {
        let runs = vec![
            RateResult {
                mode: "open-loop 5000 req/s".into(),
                paths: vec![
                    path("direct", Some(5000.0), None),
                    path("infergate", Some(5000.0), Some(40.0)),
                    path("nginx", Some(5000.0), Some(30.0)),
                ],
            },
            RateResult {
                mode: "open-loop 1000 req/s".into(),
                paths: vec![
                    path("direct", Some(1000.0), None),
                    path("infergate", Some(1000.0), Some(80.0)),
                    path("nginx", Some(1000.0), Some(70.0)),
                ],
            },
            RateResult {
                mode: "closed-loop 16 connections".into(),
                paths: vec![path("infergate", None, Some(30.0))],
            },
        ];
        let series = cpu_series(&report(runs.clone()));
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].name, "infergate");
        assert_eq!(series[0].points, vec![(1000.0, 80.0), (5000.0, 40.0)]);
        assert_eq!(series[1].name, "nginx");
        assert_eq!(series[1].points, vec![(1000.0, 70.0), (5000.0, 30.0)]);

        let spectrum = spectrum_series(&runs[0]);
        assert_eq!(spectrum.len(), 3);
        assert_eq!(spectrum[0].name, "direct");
        // A 0 µs value is drawn at 1 µs (the y axis is logarithmic).
        assert_eq!(spectrum[0].points[0], (0.0, 1.0));
        assert!((spectrum[0].points[1].0 - 2.0).abs() < 1e-9);
        assert_eq!(spectrum[0].points[1].1, 250.0);
        assert_eq!(y_range(&spectrum), Some((1.0, 250.0)));
        assert_eq!(y_range(&[]), None);
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(mode_slug("open-loop 1000 req/s"), "open-loop-1000-rps");
        assert_eq!(mode_slug("open-loop 2500.5 req/s"), "open-loop-2500.5-rps");
        assert_eq!(
            mode_slug("closed-loop 16 connections"),
            "closed-loop-16-connections"
        );
    }
}
