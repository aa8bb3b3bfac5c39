//! SVG charts of the results, drawn with plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::BenchError;

const PANEL_SIZE: (u32, u32) = (560, 380);
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];
/// Targets in the order of [`COLORS`], so a target keeps its color in every chart.
const KNOWN_TARGETS: [&str; 7] = [
    "direct",
    "lmlb",
    "nginx",
    "nginx-least-conn",
    "litellm",
    "ideal",
    "ideal-calibrated",
];

fn color(target: &str, index: usize) -> RGBColor {
    let slot = KNOWN_TARGETS.iter().position(|known| *known == target);
    COLORS[slot.unwrap_or(index) % COLORS.len()]
}

/// One chart in a row of panels.
pub struct Panel<'a, T> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub data: T,
}

/// Named values, one bar each.
pub type Bars = Vec<(String, f64)>;
/// Named lines of (x, y) points.
pub type Lines = Vec<(String, Vec<(f64, f64)>)>;

/// Draws bar charts side by side into one SVG file.
pub fn bar_panels(path: &Path, panels: &[Panel<'_, Bars>]) -> Result<(), BenchError> {
    let width = PANEL_SIZE.0 * panels.len() as u32;
    let root = SVGBackend::new(path, (width, PANEL_SIZE.1)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        draw_bars(area, panel).map_err(|e| chart_error(path, e))?;
    }
    root.present().map_err(|e| chart_error(path, e))
}

/// Draws line charts side by side into one SVG file, all with `x_label`.
pub fn line_panels(
    path: &Path,
    x_label: &str,
    panels: &[Panel<'_, Lines>],
) -> Result<(), BenchError> {
    let width = PANEL_SIZE.0 * panels.len() as u32;
    let root = SVGBackend::new(path, (width, PANEL_SIZE.1)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        draw_lines(area, x_label, panel).map_err(|e| chart_error(path, e))?;
    }
    root.present().map_err(|e| chart_error(path, e))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_bars(area: &Area<'_>, panel: &Panel<'_, Bars>) -> DrawResult {
    let bars = &panel.data;
    let top = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9) * 1.15;
    let names: Vec<&str> = bars.iter().map(|(name, _)| name.as_str()).collect();
    // plotters' integer ranges include their end, so `0..n - 1` gives n slots.
    let slots = (0..bars.len().saturating_sub(1)).into_segmented();

    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(slots, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(panel.y_label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(i) => names.get(*i).copied().unwrap_or("").to_owned(),
            _ => String::new(),
        })
        .draw()?;

    chart.draw_series(
        Histogram::vertical(&chart)
            .margin(24)
            .style_func(|segment, _| match segment {
                SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                    color(names.get(*i).copied().unwrap_or(""), *i).filled()
                }
                SegmentValue::Last => BLACK.filled(),
            })
            .data(
                bars.iter()
                    .enumerate()
                    .map(|(index, (_, value))| (index, *value)),
            ),
    )?;
    let label_style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
        Text::new(
            format_value(*value),
            (SegmentValue::CenterOf(index), *value + top * 0.01),
            label_style.clone(),
        )
    }))?;
    Ok(())
}

fn draw_lines(area: &Area<'_>, x_label: &str, panel: &Panel<'_, Lines>) -> DrawResult {
    let points = panel.data.iter().flat_map(|(_, points)| points);
    let (x_min, x_max, y_max) = points
        .fold((f64::MAX, f64::MIN, 0.0f64), |(lo, hi, y), (px, py)| {
            (lo.min(*px), hi.max(*px), y.max(*py))
        });
    let x_pad = ((x_max - x_min) * 0.05).max(1.0);

    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x_min - x_pad)..(x_max + x_pad),
            0.0..(y_max.max(1e-9) * 1.1),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(panel.y_label)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;

    for (index, (name, points)) in panel.data.iter().enumerate() {
        let color = color(name, index);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn chart_error(path: &Path, error: impl std::fmt::Display) -> BenchError {
    BenchError::io(
        format!("failed to draw {}", path.display()),
        std::io::Error::other(error.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_svg(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("lmlb-bench-{}-{name}.svg", std::process::id()))
    }

    #[test]
    fn bar_chart_names_every_bar() {
        let path = temp_svg("bars");
        let bars = vec![
            ("direct".to_owned(), 50_000.0),
            ("lmlb".to_owned(), 30_000.0),
        ];
        let panel = Panel {
            title: "req/s",
            y_label: "requests per second",
            data: bars,
        };

        bar_panels(&path, &[panel]).unwrap();

        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("direct"));
        assert!(svg.contains("lmlb"));
        assert!(svg.contains("50000"));
    }

    #[test]
    fn line_chart_has_a_legend_entry_per_line() {
        let path = temp_svg("lines");
        let lines = vec![
            ("ideal".to_owned(), vec![(50.0, 100.0), (90.0, 300.0)]),
            ("lmlb".to_owned(), vec![(50.0, 101.0), (90.0, 310.0)]),
        ];
        let panel = Panel {
            title: "mean latency",
            y_label: "ms",
            data: lines,
        };

        line_panels(&path, "load (%)", &[panel]).unwrap();

        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("ideal"));
        assert!(svg.contains("lmlb"));
        assert!(svg.contains("load (%)"));
    }
}
