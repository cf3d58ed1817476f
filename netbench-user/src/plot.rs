//! Plots of a results directory, drawn from `results.json` alone (plotters, SVG):
//! `rtt.svg` (p50 and p99 per scenario: the untraced round trip where measured),
//! `bandwidth.svg` (mean with the 95% confidence interval), `stages.svg` (each
//! scenario's mean traced round trip split into its stages) and `observer.svg` (traced /
//! untraced p50 and p99, with their 95% confidence intervals). Failed and unsupported
//! scenarios are in none of them.
//!
//! SVG only: this build of plotters has no font rasteriser (its `ttf` feature is off),
//! so a PNG could carry bars but no labels. An SVG opens in any browser and converts to
//! PNG with any SVG tool.
use std::path::{Path, PathBuf};

use plotters::{
    coord::{Shift, types::RangedCoordf64},
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use crate::results::{Results, RttSource, Scenario};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {path}")]
    Draw {
        path: PathBuf,
        #[source]
        source: DrawError,
    },
}

/// What plotters reports for the SVG backend.
pub type DrawError = plotters::drawing::DrawingAreaErrorKind<std::io::Error>;

/// One horizontal bar: its value, an optional +/- error, its series.
struct Bar {
    value: f64,
    err: Option<f64>,
    series: usize,
}

impl Bar {
    const fn new(value: f64, err: Option<f64>, series: usize) -> Self {
        Self { value, err, series }
    }
}

/// A labelled row of bars, one per series.
type Row = (String, Vec<Bar>);

/// A bar chart: its file, its title, the unit of its x axis and its series.
struct BarChart {
    file: &'static str,
    title: &'static str,
    unit: &'static str,
    series: &'static [&'static str],
}

const RTT_CHART: BarChart = BarChart {
    file: "rtt.svg",
    title: "Round-trip time per scenario (untraced probes where measured)",
    unit: "microseconds",
    series: &["p50", "p99"],
};

const BANDWIDTH_CHART: BarChart = BarChart {
    file: "bandwidth.svg",
    title: "Bandwidth per scenario (mean, 95% CI)",
    unit: "Gbit/s",
    series: &["TCP stream"],
};

const OBSERVER_CHART: BarChart = BarChart {
    file: "observer.svg",
    title: "Observer effect: traced / untraced round trip (1 = no effect; 95% CI)",
    unit: "ratio",
    series: &["p50", "p99"],
};

/// One plot and what it shows.
enum Chart<'a> {
    Bars(&'static BarChart, Vec<Row>),
    /// Each scenario's stages stacked.
    Stacked(Vec<&'a Scenario>),
}

impl Chart<'_> {
    fn file(&self) -> &'static str {
        match self {
            Self::Bars(chart, _) => chart.file,
            Self::Stacked(_) => "stages.svg",
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Bars(_, rows) => rows.is_empty(),
            Self::Stacked(scenarios) => scenarios.is_empty(),
        }
    }

    fn draw(&self, path: &Path) -> Result<(), PlotError> {
        match self {
            Self::Bars(chart, rows) => bars(path, chart, rows),
            Self::Stacked(scenarios) => stacked(path, scenarios),
        }
    }
}

/// Write every plot of `results` into `dir`; returns the files written. Scenarios
/// without figures (unsupported, failed early) are left out; a plot with nothing to
/// show is not written (with no scenario to show, no file is).
///
/// # Errors
/// When a file cannot be drawn or written.
pub fn write_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let with_rtt = results.with_rtt();
    let staged = with_rtt
        .iter()
        .copied()
        .filter(|s| !s.stages.is_empty())
        .collect();
    let charts = [
        Chart::Bars(&RTT_CHART, rows(&with_rtt, rtt_row)),
        Chart::Bars(&BANDWIDTH_CHART, rows(&with_rtt, bandwidth_row)),
        Chart::Stacked(staged),
        Chart::Bars(&OBSERVER_CHART, rows(&with_rtt, observer_row)),
    ];
    let mut written = Vec::new();
    for chart in charts.iter().filter(|c| !c.is_empty()) {
        let path = dir.join(chart.file());
        chart.draw(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// One row of bars per scenario that `row` gives one for.
fn rows(scenarios: &[&Scenario], row: fn(&Scenario) -> Option<Row>) -> Vec<Row> {
    scenarios.iter().filter_map(|s| row(s)).collect()
}

/// The quoted round trip's p50 and p99, labelled where it is the traced one.
fn rtt_row(s: &Scenario) -> Option<Row> {
    let (r, source) = s.quoted_rtt()?;
    let label = match source {
        RttSource::Untraced => s.id.clone(),
        RttSource::Traced => format!("{} (traced)", s.id),
    };
    let (p50, p99) = (r.summary.p50, r.summary.p99);
    Some((label, vec![Bar::new(p50, None, 0), Bar::new(p99, None, 1)]))
}

/// Mean bandwidth with its 95% CI.
fn bandwidth_row(s: &Scenario) -> Option<Row> {
    let b = s.bandwidth_gbps.as_ref()?;
    let err = b.ci95.filter(|c| *c > 0.0);
    Some((s.id.clone(), vec![Bar::new(b.mean, err, 0)]))
}

/// Traced / untraced p50 and p99 with their 95% CIs.
fn observer_row(s: &Scenario) -> Option<Row> {
    let e = s.observer_effect.as_ref()?;
    let bar = |r: &crate::observer::Ratio, series| {
        Bar::new(
            r.ratio,
            r.ci95.filter(|c| c.is_finite() && *c > 0.0),
            series,
        )
    };
    Some((s.id.clone(), vec![bar(&e.p50, 0), bar(&e.p99, 1)]))
}

fn draw_err(path: &Path) -> impl Fn(DrawError) -> PlotError + '_ {
    move |source| PlotError::Draw {
        path: path.to_path_buf(),
        source,
    }
}

/// Pixels for the label column: the naive font's estimate of the longest label.
fn label_width(labels: impl Iterator<Item = usize>) -> u32 {
    let longest = u32::try_from(labels.max().unwrap_or(8)).unwrap_or(40);
    (longest * 8 + 20).clamp(80, 400)
}

fn row_height(rows: usize, per_row: u32) -> u32 {
    u32::try_from(rows).unwrap_or(1) * per_row + 140
}

fn y_range(n: usize) -> std::ops::Range<f64> {
    #[expect(clippy::cast_precision_loss, reason = "row counts are small")]
    let top = n as f64 - 0.5;
    -0.5..top
}

#[expect(
    clippy::cast_precision_loss,
    reason = "row and series counts are small"
)]
fn bars(path: &Path, spec: &BarChart, rows: &[Row]) -> Result<(), PlotError> {
    let BarChart {
        title,
        unit,
        series,
        ..
    } = spec;
    let e = draw_err(path);
    let n = rows.len();
    let per_row = 18 * u32::try_from(series.len()).unwrap_or(1) + 14;
    let root = SVGBackend::new(path, (1000, row_height(n, per_row))).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let max = rows
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.value + b.err.unwrap_or(0.0)))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = row_chart(&root, title, unit, &labels, max * 1.15).map_err(&e)?;
    let k = series.len().max(1) as f64;
    let band = 0.8 / k;
    for (s, name) in series.iter().enumerate() {
        let color = Palette99::pick(s).mix(0.85);
        let rects = rows.iter().enumerate().flat_map(|(i, (_, bars))| {
            bars.iter().filter(|b| b.series == s).map(move |b| {
                // Rows top to bottom, series within a row top to bottom.
                let y0 = (n - 1 - i) as f64 + 0.4 - band * (s as f64);
                Rectangle::new([(0.0, y0), (b.value, y0 - band * 0.9)], color.filled())
            })
        });
        chart
            .draw_series(rects)
            .map_err(&e)?
            .label(*name)
            .legend(move |(x, y)| legend_mark(x, y, color));
        let whiskers = rows.iter().enumerate().flat_map(|(i, (_, bars))| {
            bars.iter().filter(|b| b.series == s).filter_map(move |b| {
                let err = b.err?;
                let y = (n - 1 - i) as f64 + 0.4 - band * (s as f64) - band * 0.45;
                Some(PathElement::new(
                    vec![((b.value - err).max(0.0), y), (b.value + err, y)],
                    BLACK.stroke_width(2),
                ))
            })
        });
        chart.draw_series(whiskers).map_err(&e)?;
        let values = rows.iter().enumerate().flat_map(|(i, (_, bars))| {
            bars.iter().filter(|b| b.series == s).map(move |b| {
                let y = (n - 1 - i) as f64 + 0.4 - band * (s as f64) - band * 0.45;
                Text::new(
                    format!("{:.1}", b.value),
                    (b.value + b.err.unwrap_or(0.0) + max * 0.01, y),
                    ("sans-serif", 11)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
            })
        });
        chart.draw_series(values).map_err(&e)?;
    }
    finish(&root, &mut chart, SeriesLabelPosition::LowerRight).map_err(e)
}

type RowChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart of one row per label (drawn left of the plotting area) on `root`, the x
/// axis from 0 to `x_max` described by `x_desc`.
fn row_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    x_desc: &str,
    labels: &[String],
    x_max: f64,
) -> Result<RowChart<'a, 'b>, DrawError> {
    // plotters loops forever on an infinite range (a figure of 1e308 summed): refuse it.
    if !x_max.is_finite() {
        // plotters' error type offers no message of ours here: a layout error it is.
        return Err(plotters::drawing::DrawingAreaErrorKind::LayoutError);
    }
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(label_width(labels.iter().map(String::len)))
        .build_cartesian_2d(0.0..x_max, y_range(labels.len()))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(x_desc)
        .draw()?;
    row_labels(root, &chart, labels)?;
    Ok(chart)
}

/// A series' mark in the legend.
fn legend_mark(x: i32, y: i32, color: RGBAColor) -> Rectangle<(i32, i32)> {
    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
}

/// The legend at `position`, then the file written.
fn finish<'a, 'b: 'a>(
    root: &DrawingArea<SVGBackend<'b>, Shift>,
    chart: &mut RowChart<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), DrawError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

/// Row labels left of the plotting area, one per row, top to bottom.
#[expect(clippy::cast_precision_loss, reason = "row counts are small")]
fn row_labels(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &RowChart<'_, '_>,
    labels: &[String],
) -> Result<(), DrawError> {
    let n = labels.len();
    let font = ("sans-serif", 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, label) in labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (n - 1 - i) as f64));
        root.draw(&Text::new(label.clone(), (x - 8, y), font.clone()))?;
    }
    Ok(())
}

/// Each scenario's mean round trip as a horizontal stack of its stages' means.
#[expect(clippy::cast_precision_loss, reason = "row counts are small")]
fn stacked(path: &Path, scenarios: &[&Scenario]) -> Result<(), PlotError> {
    let e = draw_err(path);
    let n = scenarios.len();
    // Stage names in first-seen order give each stage one colour across scenarios.
    let mut names: Vec<&str> = Vec::new();
    for s in scenarios {
        for st in &s.stages {
            if !names.contains(&st.name.as_str()) {
                names.push(&st.name);
            }
        }
    }
    let height = row_height(n, 28).max(160 + 18 * u32::try_from(names.len()).unwrap_or(0));
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let max = scenarios
        .iter()
        .map(|s| s.stages.iter().map(|st| st.mean_us).sum::<f64>())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let labels: Vec<String> = scenarios.iter().map(|s| s.id.clone()).collect();
    let mut chart = row_chart(
        &root,
        "Where the round trip goes: mean stage times per scenario (traced probes)",
        "microseconds (mean round trip, split into stages)",
        &labels,
        // Room on the right for the legend.
        max * 1.6,
    )
    .map_err(&e)?;
    for (c, name) in names.iter().enumerate() {
        let color = Palette99::pick(c).mix(0.9);
        let rects = scenarios.iter().enumerate().filter_map(|(i, s)| {
            let at = s.stages.iter().position(|st| st.name == *name)?;
            let start: f64 = s.stages[..at].iter().map(|st| st.mean_us).sum();
            let y = (n - 1 - i) as f64;
            Some(Rectangle::new(
                [(start, y + 0.35), (start + s.stages[at].mean_us, y - 0.35)],
                color.filled(),
            ))
        });
        chart
            .draw_series(rects)
            .map_err(&e)?
            .label(*name)
            .legend(move |(x, y)| legend_mark(x, y, color));
    }
    finish(&root, &mut chart, SeriesLabelPosition::UpperRight).map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{
        Env, Status,
        summary::fixture::{effect, kata_on_host, ok, stage},
    };

    fn results() -> Results {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        for (stress, p50) in [("none", 30.0), ("cpu", 12.0)] {
            let stages = ["client-tx-stack", "bridge", "server-stack-and-app"]
                .iter()
                .map(|n| stage(n, p50 / 3.0, 1.0 / 3.0))
                .collect();
            r.scenarios.push(ok(stress, p50, 20.0, stages));
        }
        r.scenarios.push(kata_on_host());
        r
    }

    #[test]
    fn writes_three_svgs_with_labels_and_leaves_out_unsupported() {
        let dir = std::env::temp_dir().join(format!("nb-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = write_all(&results(), &dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["rtt.svg", "bandwidth.svg", "stages.svg"]);
        let stages = std::fs::read_to_string(dir.join("stages.svg")).unwrap();
        assert!(stages.contains("server-stack-and-app"));
        assert!(stages.contains("runc-bridge-bridge-cpu"));
        assert!(!stages.contains("kata-host-bridge-none"));
        let rtt = std::fs::read_to_string(dir.join("rtt.svg")).unwrap();
        assert!(rtt.contains("p99") && rtt.contains("runc-bridge-bridge-none"));
        std::fs::remove_dir_all(&dir).unwrap();
        // Nothing to plot: no files.
        let empty = Results::new(Env::default(), serde_json::json!({}));
        assert!(
            write_all(&empty, Path::new("/nonexistent"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn quotes_untraced_plots_the_observer_effect_and_leaves_out_failed() {
        let mut r = results();
        let s = &mut r.scenarios[0];
        let mut untraced = s.rtt_us.clone().unwrap();
        untraced.summary.p50 = 25.5;
        untraced.summary.p99 = 77.5;
        s.rtt_untraced_us = Some(untraced);
        if let Some(traced) = s.rtt_us.as_mut() {
            traced.summary.p50 = 33.3;
            traced.summary.p99 = 66.6;
        }
        s.observer_effect = Some(effect(1.18, 1.16, Some(0.04)));
        // A failed scenario that still carries figures: plotted nowhere.
        let mut failed = r.scenarios[1].clone();
        failed.id = "runsc-bridge-bridge-none".into();
        failed.status = Status::Failed;
        r.scenarios.push(failed);
        let dir = std::env::temp_dir().join(format!("nb-plot-test2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = write_all(&r, &dir).unwrap();
        assert_eq!(files.len(), 4);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        // The texts of an SVG, trimmed.
        let texts = |svg: &str| -> Vec<String> {
            svg.split("</text>")
                .filter_map(|part| part.rsplit_once('>').map(|(_, t)| t.trim().to_owned()))
                .collect()
        };
        let rtt = texts(&read("rtt.svg"));
        let has = |texts: &[String], t: &str| texts.iter().any(|x| x == t);
        assert!(
            has(&rtt, "25.5") && has(&rtt, "77.5"),
            "untraced quoted: {rtt:?}"
        );
        assert!(
            !has(&rtt, "33.3") && !has(&rtt, "66.6"),
            "traced round trip of the untraced scenario: {rtt:?}"
        );
        assert!(has(&rtt, "runc-bridge-bridge-cpu (traced)"), "{rtt:?}");
        assert!(has(&rtt, "runc-bridge-bridge-none"), "{rtt:?}");
        let observer = texts(&read("observer.svg"));
        assert!(
            has(&observer, "1.2") && has(&observer, "runc-bridge-bridge-none"),
            "{observer:?}"
        );
        assert!(!has(&observer, "runc-bridge-bridge-cpu"), "{observer:?}");
        for f in ["rtt.svg", "bandwidth.svg", "stages.svg", "observer.svg"] {
            assert!(!read(f).contains("runsc"), "{f} shows a failed scenario");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
