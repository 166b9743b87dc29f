//! Writes metric families in the Prometheus text format (0.0.4) or in OpenMetrics 1.0, the
//! one a scraper asks for with `Accept: application/openmetrics-text`. The two differ only
//! in a counter family's name (OpenMetrics names the family without `_total`) and the
//! closing `# EOF`.

use std::fmt::Write as _;

use super::latency::{Latency, BUCKETS_SECONDS, QUANTILES};

/// Which exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format a scraper's `Accept` header asks for: OpenMetrics when it lists it (as
    /// Prometheus does), else the classic text format.
    pub fn from_accept(accept: Option<&[u8]>) -> Self {
        let asks = accept.is_some_and(|a| {
            a.windows(b"application/openmetrics-text".len())
                .any(|w| w.eq_ignore_ascii_case(b"application/openmetrics-text"))
        });
        if asks {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
    /// Quantiles, `_sum` and `_count`.
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// Label names and values of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The text being written.
pub struct Exposition {
    out: String,
    format: Format,
}

impl Exposition {
    /// An empty exposition in `format`.
    pub fn new(format: Format) -> Self {
        Self {
            out: String::with_capacity(16 * 1024),
            format,
        }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. `name` is the sample name (with
    /// `_total` for a counter).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let family = match (self.format, kind) {
            (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.out, "# HELP {family} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {family} {}", kind.as_str());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram series: buckets, `+Inf`, `_sum`, `_count`.
    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, latency: &Latency) {
        let counts = latency.bucket_counts();
        for (bound, count) in BUCKETS_SECONDS.iter().zip(counts) {
            self.bucket(name, labels, &bound.to_string(), count);
        }
        self.bucket(name, labels, "+Inf", latency.count());
        self.suffixed(name, "_sum", labels, latency.sum_seconds());
        self.suffixed(name, "_count", labels, latency.count() as f64);
    }

    /// Histogram samples from counts per bucket: `bounds` and cumulative `counts` pair up;
    /// `count` is the `+Inf` bucket.
    pub fn histogram_counts(
        &mut self,
        name: &str,
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
        count: u64,
    ) {
        for (bound, c) in bounds.iter().zip(counts) {
            self.bucket(name, &[], &bound.to_string(), *c);
        }
        self.bucket(name, &[], "+Inf", count);
        self.suffixed(name, "_sum", &[], sum);
        self.suffixed(name, "_count", &[], count as f64);
    }

    /// The samples of one summary series: `window` gives the quantiles, `total` the
    /// cumulative `_sum` and `_count` (as Prometheus client libraries do).
    pub fn summary(&mut self, name: &str, labels: Labels<'_>, window: &Latency, total: &Latency) {
        for q in QUANTILES {
            self.out.push_str(name);
            self.labels(labels, Some(("quantile", &q.to_string())));
            self.out.push(' ');
            push_value(&mut self.out, window.quantile_seconds(q));
            self.out.push('\n');
        }
        self.suffixed(name, "_sum", labels, total.sum_seconds());
        self.suffixed(name, "_count", labels, total.count() as f64);
    }

    fn bucket(&mut self, name: &str, labels: Labels<'_>, le: &str, count: u64) {
        self.out.push_str(name);
        self.out.push_str("_bucket");
        self.labels(labels, Some(("le", le)));
        let _ = writeln!(self.out, " {count}");
    }

    fn suffixed(&mut self, name: &str, suffix: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    fn labels(&mut self, labels: Labels<'_>, extra: Option<(&str, &str)>) {
        if labels.is_empty() && extra.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (name, value) in labels.iter().copied().chain(extra) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_value(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The finished text (OpenMetrics ends with `# EOF`).
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// A value as both formats spell it: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes help text: backslash and newline.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_accept_header() {
        let prom = b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some(b"text/plain")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
    }

    #[test]
    fn counters_are_named_per_format_and_values_escaped() {
        for (format, family) in [
            (Format::Prometheus, "# TYPE x_total counter"),
            (Format::OpenMetrics, "# TYPE x counter"),
        ] {
            let mut e = Exposition::new(format);
            e.family("x_total", Kind::Counter, "Things.\nMore");
            e.sample("x_total", &[("model", "a\"b\\c\nd")], 3.0);
            let text = e.finish();
            assert!(text.contains(family), "{text}");
            assert!(text.contains("Things.\\nMore"), "{text}");
            assert!(
                text.contains("x_total{model=\"a\\\"b\\\\c\\nd\"} 3\n"),
                "{text}"
            );
            assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
        }
    }

    #[test]
    fn histograms_and_summaries_have_every_part() {
        let mut l = Latency::new().unwrap();
        l.record_ms(2.0);
        let mut e = Exposition::new(Format::Prometheus);
        e.family("h_seconds", Kind::Histogram, "h");
        e.histogram("h_seconds", &[("model", "m")], &l);
        e.family("q_seconds", Kind::Summary, "q");
        e.summary("q_seconds", &[("model", "m")], &l, &l);
        let text = e.finish();
        assert!(text.contains("h_seconds_bucket{model=\"m\",le=\"0.001\"} 0\n"));
        assert!(text.contains("h_seconds_bucket{model=\"m\",le=\"0.0025\"} 1\n"));
        assert!(text.contains("h_seconds_bucket{model=\"m\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("h_seconds_sum{model=\"m\"} 0.002\n"));
        assert!(text.contains("h_seconds_count{model=\"m\"} 1\n"));
        assert!(
            text.contains("q_seconds{model=\"m\",quantile=\"0.99\"} 0.002"),
            "{text}"
        );
        let mut nan = Exposition::new(Format::Prometheus);
        nan.sample("n", &[], f64::NAN);
        nan.sample("i", &[], f64::INFINITY);
        assert_eq!(nan.finish(), "n NaN\ni +Inf\n");
    }
}
