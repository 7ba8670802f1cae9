//! Plots a person would rather see than read, as SVG files.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One bar of a grouped bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Group label on the x axis (a model).
    pub group: String,
    /// Series within the group (a metric, or "reference").
    pub series: String,
    /// Height.
    pub value: f64,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws a grouped bar chart: one cluster per group, one coloured bar per series.
pub fn grouped_bars(path: &Path, title: &str, y_label: &str, bars: &[Bar]) -> Result<(), String> {
    let mut groups: Vec<&str> = Vec::new();
    let mut series: Vec<&str> = Vec::new();
    for bar in bars {
        if !groups.contains(&bar.group.as_str()) {
            groups.push(&bar.group);
        }
        if !series.contains(&bar.series.as_str()) {
            series.push(&bar.series);
        }
    }
    let top = bars.iter().map(|b| b.value).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..groups.len() as f64, 0.0..top.max(1e-9))
        .map_err(|e| fail(&e))?;
    let names = groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                names.get(i).map(|s| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()
        .map_err(|e| fail(&e))?;
    let width = 0.8 / series.len() as f64;
    for (s, name) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let rects = bars.iter().filter(|b| b.series == *name).filter_map(|b| {
            // Every bar's group was collected from these bars above.
            let g = groups.iter().position(|g| *g == b.group)? as f64;
            let x0 = g + 0.1 + s as f64 * width;
            Some(Rectangle::new([(x0, 0.0), (x0 + width * 0.9, b.value)], color.filled()))
        });
        chart
            .draw_series(rects)
            .map_err(|e| fail(&e))?
            .label(name.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// Draws training curves: a left panel per series, one line each over epochs
/// (e.g. train loss, and the validation metric early stopping watched).
pub fn training_curves(path: &Path, title: &str, panels: &[(&str, &[f64])]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (500 * panels.len().max(1) as u32, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| fail(&e))?;
    for (i, (area, (name, values))) in
        root.split_evenly((1, panels.len().max(1))).iter().zip(panels).enumerate()
    {
        let (low, high) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
        let pad = ((high - low) * 0.1).max(1e-6);
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(1.0..(values.len().max(2)) as f64, (low - pad)..(high + pad))
            .map_err(|e| fail(&e))?;
        chart.configure_mesh().x_desc("epoch").y_desc(*name).draw().map_err(|e| fail(&e))?;
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                values.iter().enumerate().map(|(e, v)| (e as f64 + 1.0, *v)),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

/// Draws latency percentiles against offered load: one line per series of
/// (requests/s, milliseconds) points, on a logarithmic latency axis so the
/// knee at saturation and the low-load tail are both readable.
pub fn latency_curves(
    path: &Path,
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let labels = ("offered requests/s", "latency (ms, log scale)");
    line_chart(path, title, labels, series, YAxis::Log)
}

/// Any (x, y) series as lines with points, on a linear y axis fitted to
/// the data (e.g. AUC per week).
pub fn value_curves(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    line_chart(path, title, (x_label, y_label), series, YAxis::Linear)
}

#[derive(Clone, Copy, PartialEq)]
enum YAxis {
    Linear,
    Log,
}

fn line_chart(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
    y_axis: YAxis,
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (x_high, y_low, y_high) = points
        .fold((1.0f64, f64::INFINITY, f64::NEG_INFINITY), |(x, l, h), p| {
            (x.max(p.0), l.min(p.1), h.max(p.1))
        });
    let (y_low, y_high) = match y_axis {
        YAxis::Log => {
            let low = if y_low.is_finite() { (y_low * 0.8).max(0.01) } else { 0.1 };
            (low, y_high.max(1.0) * 1.25)
        }
        YAxis::Linear if y_low.is_finite() => {
            let pad = ((y_high - y_low) * 0.1).max(1e-3);
            (y_low - pad, y_high + pad)
        }
        YAxis::Linear => (0.0, 1.0),
    };
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let x_range = 0.0..x_high * 1.05;
    match y_axis {
        YAxis::Log => {
            let chart = builder
                .build_cartesian_2d(x_range, (y_low..y_high).log_scale())
                .map_err(|e| fail(&e))?;
            draw_lines(chart, x_label, y_label, series).map_err(|e| fail(&e))?;
        }
        YAxis::Linear => {
            let chart = builder.build_cartesian_2d(x_range, y_low..y_high).map_err(|e| fail(&e))?;
            draw_lines(chart, x_label, y_label, series).map_err(|e| fail(&e))?;
        }
    }
    root.present().map_err(|e| fail(&e))
}

fn draw_lines<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| fail(&e))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut sorted = points.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(sorted.iter().copied(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(sorted.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_label() {
        let dir = std::env::temp_dir().join(format!("cascade-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bars.svg");
        let bars = vec![
            Bar { group: "Pop".into(), series: "ndcg@10".into(), value: 0.045 },
            Bar { group: "EASE".into(), series: "ndcg@10".into(), value: 0.07 },
            Bar { group: "EASE".into(), series: "reference".into(), value: 0.0698 },
        ];
        grouped_bars(&path, "LOO-FULL", "value", &bars).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["LOO-FULL", "Pop", "EASE", "reference", "<rect"] {
            assert!(svg.contains(text), "the SVG lacks {text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn training_curves_name_each_panel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.svg");
        let loss = [0.69, 0.55, 0.52];
        let auc = [0.70, 0.78, 0.79];
        training_curves(&path, "fm", &[("train loss", &loss), ("valid AUC", &auc)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["fm", "train loss", "valid AUC", "epoch", "<polyline"] {
            assert!(svg.contains(text), "the SVG lacks {text}");
        }
    }

    #[test]
    fn latency_curves_label_each_percentile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        let p50 = vec![(250.0, 2.4), (500.0, 2.4), (1000.0, 14.2)];
        let p99 = vec![(500.0, 7.8), (250.0, 4.4), (1000.0, 157.0)];
        latency_curves(&path, "100k items", &[("p50", p50), ("p99", p99)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["100k items", "p50", "p99", "offered requests/s", "<polyline"] {
            assert!(svg.contains(text), "the SVG lacks {text}");
        }
    }
}
