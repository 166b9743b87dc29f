//! The soak's chart: three panels over time (minutes): resident memory; descriptors,
//! sockets and established connections; p50 and p99 latency.

use std::path::Path;

use plotters::prelude::*;

use super::WindowRow;

const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const GREEN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

/// One panel: `lines` as (label, colour, values), against minutes.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    minutes: &[f64],
    lines: &[(&str, RGBColor, Vec<f64>)],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let x_max = minutes.iter().copied().fold(0.0, f64::max).max(0.1);
    let y_max = lines
        .iter()
        .flat_map(|l| l.2.iter().copied())
        .fold(0.0, f64::max)
        .max(1.0);
    let decimals = if y_max < 10.0 { 1 } else { 0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max * 1.15)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (label, color, values) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                minutes.iter().copied().zip(values.iter().copied()),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Draws `rows` into an SVG at `path`.
pub fn draw(path: &Path, rows: &[WindowRow]) -> Result<(), String> {
    if rows.is_empty() {
        return Err("no windows to draw".into());
    }
    let minutes: Vec<f64> = rows.iter().map(|r| r.t_s / 60.0).collect();
    let col = |f: fn(&WindowRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let root = SVGBackend::new(path, (960, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    panel(
        &panels[0],
        "infergate resident memory under the soak mix",
        "RSS MiB",
        &minutes,
        &[(
            "RSS MiB",
            BLUE,
            col(|r| r.resources.rss_kib as f64 / 1024.0),
        )],
    )?;
    panel(
        &panels[1],
        "open descriptors and connections (read half-way through each 10 s window)",
        "count",
        &minutes,
        &[
            ("fds", BLUE, col(|r| r.resources.fds as f64)),
            ("sockets", ORANGE, col(|r| r.resources.sockets as f64)),
            (
                "TCP established",
                GREEN,
                col(|r| r.resources.tcp_established as f64),
            ),
        ],
    )?;
    panel(
        &panels[2],
        "latency of the successful requests, per window",
        "ms",
        &minutes,
        &[
            ("p50 ms", BLUE, col(|r| r.p50_us as f64 / 1000.0)),
            ("p99 ms", ORANGE, col(|r| r.p99_us as f64 / 1000.0)),
        ],
    )?;
    root.present().map_err(|e| e.to_string())
}
