//! SVG percentile plots of latency distributions: one line per series
//! (a label and its `.hgrm` percentile rows), with a legend.
//!
//! The x axis is the percentile on the usual log scale of 1/(1-p): its
//! coordinate is the number of nines, -log10(1 - p), so 0% is at 0, 90% at
//! 1, 99% at 2, 99.9% at 3, and every decade is labelled. The axis ends one
//! decade past the highest finite percentile of any series (at least 99%);
//! a row at percentile 100% (the maximum) is drawn at that right edge. The
//! y axis is latency in milliseconds from 0, linear.
//!
//! Drawing uses plotters' SVG backend, which writes text as `<text>`
//! elements: no font files or system libraries are involved.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;

use crate::hgrm::PercentileRow;

/// Plot size, pixels.
const WIDTH_PX: u32 = 960;
const HEIGHT_PX: u32 = 600;

/// The x axis never extends past this many nines (99.9999999%).
const MAX_NINES: u32 = 9;

/// Line colours, in series order (cycled): distinct on white.
const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// Font sizes, points.
const TITLE_PT: u32 = 24;
const LABEL_PT: u32 = 16;

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The percentile table, as `hgrm::parse` returns it.
    pub rows: Vec<PercentileRow>,
}

/// The x coordinate of a quantile: -log10(1 - q), the number of nines;
/// None for q >= 1 (the maximum), which has no finite position.
pub fn nines(quantile: f64) -> Option<f64> {
    (quantile < 1.0).then(|| -(1.0 - quantile.max(0.0)).log10())
}

/// The label of a whole number of nines: 0%, 90%, 99%, 99.9%, 99.99%, ...
pub fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".into(),
        1 => "90%".into(),
        n => {
            let n = n as usize;
            let decimals = "9".repeat(n - 2);
            if decimals.is_empty() {
                "99%".into()
            } else {
                format!("99.{decimals}%")
            }
        }
    }
}

/// The x axis: nines from 0 to `edge_nines`, a key point (tick, grid line
/// and percentile label) at every whole number of nines.
struct NinesAxis {
    edge_nines: u32,
}

impl Ranged for NinesAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(self.edge_nines.max(1));
        let fraction = value.clamp(0.0, span) / span;
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..=self.edge_nines).map(f64::from).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..f64::from(self.edge_nines)
    }
}

impl ValueFormatter<f64> for NinesAxis {
    fn format_ext(&self, value: &f64) -> String {
        percentile_label(value.round().max(0.0) as u32)
    }
}

/// A latency axis label in ms: at most three decimals, no trailing zeros.
pub fn latency_label(latency_ms: f64) -> String {
    let text = format!("{latency_ms:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The right end of the x axis, in whole nines, for these series.
fn axis_nines(series: &[Series]) -> u32 {
    let highest = series
        .iter()
        .flat_map(|s| s.rows.iter().filter_map(|r| nines(r.quantile)))
        .fold(0.0f64, f64::max);
    // One decade past the highest finite percentile, so the maximum (drawn
    // at the edge) stays apart from it. The tolerance keeps 99% (computed
    // as 1.999...) in its own decade.
    let edge = (highest + 1e-9).floor() + 1.0;
    (edge.clamp(2.0, f64::from(MAX_NINES))) as u32
}

/// The (x, latency_ms) points of one series on an axis ending at `edge`.
fn points(rows: &[PercentileRow], edge: f64) -> Vec<(f64, f64)> {
    rows.iter()
        .map(|r| {
            (
                nines(r.quantile).map_or(edge, |x| x.min(edge)),
                r.latency_ms,
            )
        })
        .collect()
}

/// Draws the series into an SVG document.
pub fn render_svg(title: &str, series: &[Series]) -> Result<String, String> {
    if series.is_empty() {
        return Err("nothing to plot".into());
    }
    let edge_nines = axis_nines(series);
    let edge = f64::from(edge_nines);
    let top_ms = series
        .iter()
        .flat_map(|s| s.rows.iter().map(|r| r.latency_ms))
        .fold(0.0f64, f64::max);
    let y_max_ms = (top_ms * 1.05).max(0.001);
    let mut svg = String::new();
    draw(&mut svg, title, series, edge_nines, edge, y_max_ms).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    series: &[Series],
    edge_nines: u32,
    edge: f64,
    y_max_ms: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", TITLE_PT))
        .margin(16)
        // Room for the last percentile label, centred on the right edge.
        .margin_right(48)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(NinesAxis { edge_nines }, 0f64..y_max_ms)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .label_style(("sans-serif", LABEL_PT))
        .axis_desc_style(("sans-serif", LABEL_PT))
        .y_label_formatter(&|y| latency_label(*y))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points(&s.rows, edge),
                color.stroke_width(2),
            ))?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", LABEL_PT))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(latency_ms: f64, quantile: f64, total_count: u64) -> PercentileRow {
        PercentileRow {
            latency_ms,
            quantile,
            total_count,
        }
    }

    #[test]
    fn percentile_axis() {
        assert_eq!(nines(0.0), Some(0.0));
        assert!((nines(0.9).unwrap() - 1.0).abs() < 1e-9);
        assert!((nines(0.999).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), None);
        let labels: Vec<_> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(latency_label(12.0), "12");
        assert_eq!(latency_label(0.25), "0.25");
        assert_eq!(latency_label(0.0), "0");
        let s = |q: f64| Series {
            label: "a".into(),
            rows: vec![row(1.0, 0.0, 1), row(2.0, q, 2), row(3.0, 1.0, 3)],
        };
        assert_eq!(axis_nines(&[s(0.5)]), 2);
        assert_eq!(axis_nines(&[s(0.999)]), 4);
        assert_eq!(axis_nines(&[s(0.5), s(0.9995)]), 4);
        let p = points(&s(0.99).rows, 3.0);
        assert_eq!(p.last(), Some(&(3.0, 3.0)));
    }

    #[test]
    fn svg_has_lines_and_legend() {
        let a = Series {
            label: "pairdb".into(),
            rows: vec![
                row(0.1, 0.0, 1),
                row(0.2, 0.9, 90),
                row(0.5, 0.99, 99),
                row(0.9, 1.0, 100),
            ],
        };
        let b = Series {
            label: "reference <&>".into(),
            rows: vec![row(0.2, 0.0, 1), row(0.4, 0.9, 90), row(1.5, 1.0, 100)],
        };
        let svg = render_svg("reads 4x16", &[a, b]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "pairdb",
            "reference &lt;&amp;&gt;",
            "reads 4x16",
            "99.9%",
            "90%",
            "latency (ms)",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.matches("<polyline").count() >= 2);
        assert!(render_svg("t", &[]).is_err());
    }
}
