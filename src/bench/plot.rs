//! `--plot FILE.png`: latency by percentile (HdrHistogram style: the x axis stretches the tail,
//! 90 %, 99 %, 99.9 %, … equally spaced) beside throughput over time.
//!
//! Text needs a TrueType font; plotters' own font loader needs fontconfig's C library, which a
//! fresh machine lacks, so the font is read from the usual system paths instead. Without one
//! the plot is drawn with no text, and the caller is told.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::report::Report;

/// Fonts tried in order (Debian's fonts-dejavu-core, fonts-liberation, and the RHEL paths).
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// The tail the percentile axis reaches: 99.999 % (five nines).
const NINES_MAX: f64 = 5.0;

/// Draws `report` into `path` (PNG). Returns a warning to show, if any.
pub fn draw(report: &Report, path: &Path) -> Result<Option<String>, String> {
    let has_font = load_font();
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(700);
    draw_latency(report, &left, has_font).map_err(|e| fail(&e))?;
    draw_throughput(report, &right, has_font).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok((!has_font).then(|| format!("no TrueType font found (tried {}): the plot has no text", FONT_PATHS.join(", "))))
}

/// Registers the first font found as plotters' "sans-serif".
fn load_font() -> bool {
    for path in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps fonts for the life of the process: leak the bytes once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// (nines, ms) points of `histogram`: x = log10(1 / (1 - percentile)).
fn percentile_curve(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for v in histogram.iter_quantiles(10) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 { NINES_MAX } else { (1.0 / (1.0 - q)).log10().min(NINES_MAX) };
        points.push((x, v.value_iterated_to() as f64 / 1000.0));
    }
    points
}

fn draw_latency(report: &Report, area: &Area<'_>, has_font: bool) -> DrawResult {
    let curves = [
        ("produce ack", percentile_curve(&report.histograms.produce), BLUE),
        ("end-to-end", percentile_curve(&report.histograms.e2e), RED),
    ];
    let y_max = curves.iter().flat_map(|(_, c, _)| c.iter().map(|p| p.1)).fold(0.0f64, f64::max).max(0.001) * 1.1;
    let mut builder = ChartBuilder::on(area);
    builder.margin(20).x_label_area_size(40).y_label_area_size(60);
    if has_font {
        builder.caption("Latency by percentile", ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(0.0..NINES_MAX, 0.0..y_max)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(6).x_label_formatter(&|x| percentile_label(*x));
    if has_font {
        mesh.x_desc("percentile").y_desc("latency (ms)");
    }
    mesh.draw()?;
    for (name, curve, color) in curves {
        if curve.is_empty() {
            continue;
        }
        let series = chart.draw_series(LineSeries::new(curve, color.stroke_width(2)))?;
        series.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if has_font {
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    Ok(())
}

fn percentile_label(nines: f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-nines));
    match nines.round() as i64 {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        n => format!("{percentile:.*}%", (n - 2).max(0) as usize),
    }
}

fn draw_throughput(report: &Report, area: &Area<'_>, has_font: bool) -> DrawResult {
    let mb = |bytes: u64| bytes as f64 / 1_000_000.0;
    let produced: Vec<(f64, f64)> =
        report.timeline.iter().map(|p| (p.second as f64 + 1.0, mb(p.produced.bytes))).collect();
    let consumed: Vec<(f64, f64)> =
        report.timeline.iter().map(|p| (p.second as f64 + 1.0, mb(p.consumed.bytes))).collect();
    let x_max = report.timeline.len().max(1) as f64 + 1.0;
    let y_max = produced.iter().chain(&consumed).map(|p| p.1).fold(0.0f64, f64::max).max(0.001) * 1.1;
    let mut builder = ChartBuilder::on(area);
    builder.margin(20).x_label_area_size(40).y_label_area_size(60);
    if has_font {
        builder.caption("Throughput per second", ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let mut mesh = chart.configure_mesh();
    if has_font {
        mesh.x_desc("second").y_desc("MB/s (payload)");
    }
    mesh.draw()?;
    let lines = [("produced", produced, BLUE), ("consumed", consumed, RED)];
    for (name, line, color) in lines {
        if line.iter().all(|p| p.1 == 0.0) {
            continue;
        }
        let series = chart.draw_series(LineSeries::new(line, color.stroke_width(2)))?;
        series.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if has_font {
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_is_labelled_in_nines() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
    }
}
