//! Drawing the charts as SVG with plotters' SVG backend. Text is written as SVG `<text>`
//! elements for the viewer to render (plotters is built without its `ttf` feature, so no
//! font files or fontconfig are needed; text widths are estimated for the layout).

use std::path::Path;

use plotters::prelude::*;

use super::data::{percentile_label, y_range, Series};
use super::PlotError;

/// Chart size in pixels.
const SIZE: (u32, u32) = (960, 600);

/// Tableau's ten colours: distinct, readable on white. A target keeps its colour in every
/// chart of a run (its index among all the run's targets).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn color_of(name: &str, targets: &[String]) -> RGBColor {
    let index = targets.iter().position(|t| t == name).unwrap_or(0);
    PALETTE[index % PALETTE.len()]
}

/// A latency in µs as people read it: `250 µs`, `1.5 ms`, `2 s`.
pub fn format_us(us: f64) -> String {
    let trim = |v: f64| {
        let text = format!("{v:.1}");
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    };
    if us >= 1e6 {
        format!("{} s", trim(us / 1e6))
    } else if us >= 1e3 {
        format!("{} ms", trim(us / 1e3))
    } else {
        format!("{} µs", trim(us))
    }
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The HDR percentile spectrum: x = percentile on the `log10(1 / (1 - p))` axis (0% to
/// 99.99%), y = latency on a log axis; one line per target.
pub fn draw_spectrum(
    path: &Path,
    title: &str,
    series: &[Series],
    targets: &[String],
) -> Result<(), PlotError> {
    let (lo, hi) = y_range(series).ok_or(PlotError::Empty)?;
    let err = |e| draw_error(path, e);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let y = ((lo * 0.8).max(1.0)..(hi * 1.25).max(2.0)).log_scale();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .margin_right(48)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..4f64, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format_us(*y))
        .x_desc("percentile (each step right adds a nine)")
        .y_desc("latency (log scale)")
        .label_style(("sans-serif", 15))
        .max_light_lines(4)
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(err)?;
    for s in series {
        let color = color_of(&s.name, targets);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// CPU µs per request (y, from 0) by offered rate (x); one line with markers per target.
pub fn draw_cpu_by_rate(
    path: &Path,
    title: &str,
    series: &[Series],
    targets: &[String],
) -> Result<(), PlotError> {
    let (_, hi) = y_range(series).ok_or(PlotError::Empty)?;
    let max_rate = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    let err = |e| draw_error(path, e);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .margin_right(48)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..(max_rate * 1.1).max(1.0), 0f64..(hi * 1.2).max(1.0))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("offered rate (requests per second)")
        .y_desc("CPU µs per request")
        .label_style(("sans-serif", 15))
        .max_light_lines(4)
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(err)?;
    for s in series {
        let color = color_of(&s.name, targets);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        // A marker at each measured rate, its value written just above it.
        chart
            .draw_series(s.points.iter().map(|&(x, y)| {
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 5, color.filled())
                    + Text::new(
                        format!("{y:.1}"),
                        (6, -22),
                        ("sans-serif", 14).into_font().color(&color),
                    )
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_in_their_unit() {
        assert_eq!(format_us(250.0), "250 µs");
        assert_eq!(format_us(1500.0), "1.5 ms");
        assert_eq!(format_us(10_000.0), "10 ms");
        assert_eq!(format_us(2_000_000.0), "2 s");
    }
}
