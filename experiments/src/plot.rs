//! Charts of a run (SVG and PNG).
//!
//! One chart per `[[chart]]` of the scenario: the median over rounds of a metric against a swept key, one
//! line per engine (and per value of the chart's `series` key). Segment is drawn in blues and commitlog in
//! oranges; the values of the series key differ by shade and marker shape. A swept key whose values are
//! text (`timer_pattern = ["spread", "burst"]`) gives a categorical x axis: one tick per value, in the order
//! the points ran, and markers without connecting lines.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, ensure};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::RunResults;
use crate::scenario::Chart;

/// Pixel size of every chart.
const SIZE: (u32, u32) = (900, 560);

/// Font family of all chart text (DejaVu Sans, registered by [`register_font`]).
const FONT: &str = "sans-serif";

/// Shades of the segment engine's lines, one per value of the series key (then repeating).
const BLUES: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(8, 48, 107), RGBColor(107, 174, 214), RGBColor(23, 190, 207)];

/// Shades of the commitlog engine's lines.
const ORANGES: [RGBColor; 4] =
    [RGBColor(230, 85, 13), RGBColor(153, 52, 4), RGBColor(253, 174, 107), RGBColor(203, 24, 29)];

/// Shades for any other engine name.
const GREENS: [RGBColor; 4] =
    [RGBColor(44, 160, 44), RGBColor(0, 90, 50), RGBColor(140, 210, 120), RGBColor(120, 120, 40)];

/// Marker outlines in pixels around the point: square, triangle, diamond, inverted triangle.
const MARKERS: [&[(i32, i32)]; 4] = [
    &[(-4, -4), (4, -4), (4, 4), (-4, 4)],
    &[(0, -5), (5, 4), (-5, 4)],
    &[(0, -5), (5, 0), (0, 5), (-5, 0)],
    &[(0, 5), (5, -4), (-5, -4)],
];

/// Width of the legend column right of the plot, in pixels.
const LEGEND_WIDTH: i32 = 220;

/// Margin around the plot and the legend, in pixels.
const MARGIN: i32 = 16;

/// At most this many distinct x values are used as the ticks of a logarithmic x axis.
const MAX_VALUE_TICKS: usize = 12;

/// The files of one rendered chart.
#[derive(Clone, Debug)]
pub struct ChartFile {
    /// The chart's title.
    pub title: String,
    /// The SVG file.
    pub svg: PathBuf,
    /// The PNG file.
    pub png: PathBuf,
}

/// Draws every chart of the scenario as `dir/{stem}-{name}.svg` and `.png`.
///
/// A chart without any data is still drawn (empty, captioned "no data").
pub fn render(results: &RunResults, dir: &Path, stem: &str) -> Result<Vec<ChartFile>> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    results.scenario.chart.iter().map(|chart| render_chart(results, chart, dir, stem)).collect()
}

/// Draws one chart in both formats.
fn render_chart(results: &RunResults, chart: &Chart, dir: &Path, stem: &str) -> Result<ChartFile> {
    let plot = Plot::of(results, chart);
    let svg = dir.join(format!("{stem}-{}.svg", chart.name));
    let png = dir.join(format!("{stem}-{}.png", chart.name));
    draw_on(SVGBackend::new(&svg, SIZE).into_drawing_area(), &plot)
        .with_context(|| format!("drawing {}", svg.display()))?;
    draw_on(BitMapBackend::new(&png, SIZE).into_drawing_area(), &plot)
        .with_context(|| format!("drawing {}", png.display()))?;
    Ok(ChartFile { title: chart.title.clone(), svg, png })
}

/// Registers the embedded DejaVu Sans as [`FONT`], once; text cannot be drawn without it.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    ensure!(ok, "the embedded DejaVu Sans font could not be loaded");
    Ok(())
}

/// Everything needed to draw a chart, independent of the backend.
struct Plot {
    /// The caption (the chart's title, marked when there is no data).
    caption: String,
    /// Label of the x axis.
    x_label: String,
    /// Label of the y axis.
    y_label: String,
    /// The x axis.
    x: Axis,
    /// The y axis.
    y: Axis,
    /// The names of a categorical x axis (position `i` shows name `i`); empty for a numeric one.
    x_names: Vec<String>,
    /// The lines, in legend order.
    lines: Vec<Line>,
}

/// One axis: its range, scale and (for a logarithmic scale) its ticks.
struct Axis {
    /// The values shown.
    range: Range<f64>,
    /// Logarithmic scale.
    log: bool,
    /// Tick positions of a logarithmic axis (a linear axis picks its own).
    ticks: Vec<f64>,
}

/// One line: an engine, or an engine and one value of the series key.
struct Line {
    /// Legend text, e.g. `segment, flush=os`.
    name: String,
    /// Line and marker colour.
    color: RGBColor,
    /// Index into [`MARKERS`].
    marker: usize,
    /// The points, sorted by x.
    points: Vec<(f64, f64)>,
}

impl Plot {
    /// Collects the lines of `chart` from the results and sizes the axes to them.
    fn of(results: &RunResults, chart: &Chart) -> Plot {
        let x_names = categories(results, chart);
        let lines = lines(results, chart, &x_names);
        let xs: Vec<f64> = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).collect();
        let ys: Vec<f64> = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).collect();
        let caption = if lines.is_empty() { format!("{} (no data)", chart.title) } else { chart.title.clone() };
        let x = if x_names.is_empty() { x_axis(&xs, chart.log_x) } else { category_axis(x_names.len()) };
        Plot {
            caption,
            x_label: chart.x_label.clone(),
            y_label: chart.y_label.clone(),
            x,
            y: y_axis(&ys, chart.log_y),
            x_names,
            lines,
        }
    }
}

/// The values of the chart's x key as category names, in the order the points ran, when any of them is
/// text; empty when they are all numbers.
fn categories(results: &RunResults, chart: &Chart) -> Vec<String> {
    let labels = results.labels();
    let textual = labels.iter().any(|l| results.point(l).and_then(|p| p.get(&chart.x)).is_some_and(|v| v.is_string()));
    if !textual {
        return Vec::new();
    }
    distinct(labels.iter().filter_map(|l| point_text(results, l, &chart.x)))
}

/// The lines of a chart: engines in the scenario's order, each split by the values of the series key.
/// `x_names` are the categories of a categorical x axis (empty for a numeric one).
fn lines(results: &RunResults, chart: &Chart, x_names: &[String]) -> Vec<Line> {
    let labels = results.labels();
    let groups: Vec<Option<String>> = match &chart.series {
        None => vec![None],
        Some(key) => {
            distinct(labels.iter().filter_map(|l| point_text(results, l, key))).into_iter().map(Some).collect()
        }
    };
    let mut out = Vec::new();
    for (e, engine) in results.scenario.engines.iter().enumerate() {
        for (s, group) in groups.iter().enumerate() {
            let in_group = |label: &String| match (&chart.series, group) {
                (Some(key), Some(value)) => point_text(results, label, key).as_ref() == Some(value),
                _ => true,
            };
            let members: Vec<&String> = labels.iter().filter(|l| in_group(l)).collect();
            let points = line_points(results, chart, engine, &members, x_names);
            if points.is_empty() {
                continue;
            }
            let name = match (&chart.series, group) {
                (Some(key), Some(value)) => format!("{engine}, {key}={value}"),
                _ => engine.clone(),
            };
            out.push(Line { name, color: shade(engine, e, s), marker: s % MARKERS.len(), points });
        }
    }
    if !x_names.is_empty() {
        dodge(&mut out);
    }
    out
}

/// Spreads the lines of a categorical chart side by side within each category (over half a category's
/// width, in legend order), so that equal values do not hide one another.
fn dodge(lines: &mut [Line]) {
    let n = lines.len() as f64;
    for (k, line) in lines.iter_mut().enumerate() {
        let shift = (k as f64 - (n - 1.0) / 2.0) * 0.5 / n;
        for point in &mut line.points {
            point.0 += shift;
        }
    }
}

/// The (x, median y) points of one engine over `labels`, sorted by x, without values a log axis cannot show.
/// On a categorical axis (`x_names` not empty) x is the position of the point's value among `x_names`.
fn line_points(
    results: &RunResults,
    chart: &Chart,
    engine: &str,
    labels: &[&String],
    x_names: &[String],
) -> Vec<(f64, f64)> {
    let usable = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
    let log_x = chart.log_x && x_names.is_empty();
    let mut points: Vec<(f64, f64)> = labels
        .iter()
        .filter_map(|label| {
            let x = if x_names.is_empty() {
                results.point(label)?.get(&chart.x)?.as_f64()?
            } else {
                let name = point_text(results, label, &chart.x)?;
                x_names.iter().position(|n| *n == name)? as f64
            };
            let y = results.median(label, engine, &chart.y)?;
            (usable(x, log_x) && usable(y, chart.log_y)).then_some((x, y))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// A point's value of `key` as text (strings without quotes).
fn point_text(results: &RunResults, label: &str, key: &str) -> Option<String> {
    results.point(label)?.get(key).map(crate::scenario::value_text)
}

/// The distinct items in order of first appearance.
fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The colour of series `series` of `engine` (the `index`th engine of the scenario).
fn shade(engine: &str, index: usize, series: usize) -> RGBColor {
    let family = match engine {
        "segment" => &BLUES,
        "commitlog" => &ORANGES,
        _ if index == 0 => &BLUES,
        _ => &GREENS,
    };
    family[series % family.len()]
}

/// The x axis over `xs`: padded; on a log scale, ticked at the values themselves when there are few.
fn x_axis(xs: &[f64], log: bool) -> Axis {
    let range = if log { log_range(xs) } else { linear_range(xs) };
    let values = distinct_values(xs);
    let ticks = if log && !values.is_empty() && values.len() <= MAX_VALUE_TICKS { values } else { log_ticks(&range) };
    Axis { range, log, ticks }
}

/// A categorical x axis of `n` categories at positions `0..n` (the lines dodged around them), half a step of
/// room each side.
fn category_axis(n: usize) -> Axis {
    let n = n.max(1) as f64;
    Axis { range: -0.5..n - 0.5, log: false, ticks: (0..n as usize).map(|i| i as f64).collect() }
}

/// The y axis over `ys`: from 0 to 110% of the largest value (linear), or padded decades (log).
fn y_axis(ys: &[f64], log: bool) -> Axis {
    let range = if log { log_range(ys) } else { zero_based_range(ys) };
    let ticks = log_ticks(&range);
    Axis { range, log, ticks }
}

/// The smallest and largest of `values` (`None` when empty).
fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// The sorted distinct values.
fn distinct_values(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

/// A linear range padded by 4% each side (not below 0 for non-negative data), or by half around a single value.
fn linear_range(values: &[f64]) -> Range<f64> {
    let Some((min, max)) = min_max(values) else { return 0.0..1.0 };
    let pad = if max > min {
        (max - min) * 0.04
    } else if min != 0.0 {
        min.abs() * 0.5
    } else {
        1.0
    };
    let lo = if min >= 0.0 { (min - pad).max(0.0) } else { min - pad };
    lo..max + pad
}

/// A linear range from 0 (or the smallest value, if negative) to 110% of the largest value.
fn zero_based_range(values: &[f64]) -> Range<f64> {
    let Some((min, max)) = min_max(values) else { return 0.0..1.0 };
    let lo = min.min(0.0);
    let hi = if max > lo { lo + (max - lo) * 1.1 } else { lo + 1.0 };
    lo..hi
}

/// A logarithmic range over positive values: 30% of padding each side, at least a factor of 4 wide.
fn log_range(values: &[f64]) -> Range<f64> {
    let Some((min, max)) = min_max(values) else { return 1.0..10.0 };
    let (lo, hi) = (min / 1.3, max * 1.3);
    let widen = (4.0 / (hi / lo)).max(1.0).sqrt();
    lo / widen..hi * widen
}

/// Ticks of a logarithmic axis: decades if there are at least 3 in range, else 1-2-5, else 1 to 9 per decade.
fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    const STEPS: [&[f64]; 3] = [&[1.0], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
    let mut ticks = Vec::new();
    for mantissas in STEPS {
        ticks = decade_ticks(range, mantissas);
        if ticks.len() >= 3 {
            break;
        }
    }
    ticks
}

/// The values `m × 10^k` (for each mantissa `m`) inside `range`.
fn decade_ticks(range: &Range<f64>, mantissas: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    if !(range.start > 0.0 && range.end.is_finite()) {
        return out;
    }
    let mut decade = 10f64.powf(range.start.log10().floor());
    while decade <= range.end {
        out.extend(mantissas.iter().map(|m| m * decade).filter(|v| range.contains(v) || *v == range.end));
        decade *= 10.0;
    }
    out
}

/// A tick label: integers in full, other values with up to 3 decimals (tiny ones in exponent form).
fn tick_label(v: &f64) -> String {
    // Linear ticks are computed by steps and 0 can come out as a rounding error.
    let v = if v.abs() < 1e-12 { 0.0 } else { *v };
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A linear axis ticked exactly at given values: the positions of a categorical axis's categories.
struct Ticked {
    /// The linear mapping.
    inner: RangedCoordf64,
    /// Where the ticks (and grid lines) go.
    ticks: Vec<f64>,
}

impl Ticked {
    /// `range`, ticked at `ticks`.
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Ticked {
        Ticked { inner: range.into(), ticks }
    }
}

impl Ranged for Ticked {
    // The labels come from the chart's formatter ([`x_tick_label`]), not from this default.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// The label of an x tick: the category's name on a categorical axis, else the number.
fn x_tick_label(x_names: &[String], v: &f64) -> String {
    if x_names.is_empty() {
        return tick_label(v);
    }
    let i = v.round();
    match x_names.get(i as usize) {
        Some(name) if i >= 0.0 && (v - i).abs() < 1e-6 => name.clone(),
        _ => String::new(),
    }
}

/// Draws `plot` on a backend, choosing the coordinate types for its linear, logarithmic or categorical axes.
fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, plot: &Plot) -> Result<()> {
    let (x, y) = (plot.x.range.clone(), plot.y.range.clone());
    let (x_ticks, y_ticks) = (plot.x.ticks.clone(), plot.y.ticks.clone());
    let categorical = !plot.x_names.is_empty();
    match (plot.x.log, plot.y.log) {
        (false, false) if categorical => draw(&root, plot, Ticked::new(x, x_ticks), y),
        (false, true) if categorical => {
            draw(&root, plot, Ticked::new(x, x_ticks), y.log_scale().with_key_points(y_ticks))
        }
        (false, false) => draw(&root, plot, x, y),
        (true, false) => draw(&root, plot, x.log_scale().with_key_points(x_ticks), y),
        (false, true) => draw(&root, plot, x, y.log_scale().with_key_points(y_ticks)),
        (true, true) => {
            draw(&root, plot, x.log_scale().with_key_points(x_ticks), y.log_scale().with_key_points(y_ticks))
        }
    }?;
    root.present().map_err(plot_error)
}

/// Draws the caption, axes, lines, markers and legend of `plot` on `root` with the given axis coordinates.
fn draw<DB, X, Y>(root: &DrawingArea<DB, Shift>, plot: &Plot, x: X, y: Y) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let area = root.margin(8, 0, 0, 0).titled(&plot.caption, (FONT, 22)).map_err(plot_error)?;
    let width = area.dim_in_pixel().0 as i32;
    let (chart_area, legend_area) = area.split_horizontally(width - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(MARGIN)
        .x_label_area_size(50)
        .y_label_area_size(76)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .x_label_formatter(&|v| x_tick_label(&plot.x_names, v))
        .y_label_formatter(&tick_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .max_light_lines(4)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(plot_error)?;
    for line in &plot.lines {
        // Categories have no order that a line between them would mean.
        if plot.x_names.is_empty() {
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), line.color.stroke_width(2)))
                .map_err(plot_error)?;
        }
        let markers = line.points.iter().map(|&p| EmptyElement::at(p) + marker_shape(line.marker, line.color));
        chart.draw_series(markers).map_err(plot_error)?;
    }
    draw_legend(&legend_area, &plot.lines)
}

/// Draws the legend in its own column right of the chart, so that it never hides a line.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, lines: &[Line]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    const ROW: i32 = 20;
    let (top, right) = (MARGIN, LEGEND_WIDTH - MARGIN);
    let bottom = top + ROW * lines.len() as i32 + 8;
    area.draw(&Rectangle::new([(0, top), (right, bottom)], BLACK.mix(0.5))).map_err(plot_error)?;
    let style = TextStyle::from((FONT, 13)).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, line) in lines.iter().enumerate() {
        let y = top + 14 + ROW * i as i32;
        let sample = EmptyElement::at((20, y))
            + PathElement::new(vec![(-12, 0), (12, 0)], line.color.stroke_width(2))
            + marker_shape(line.marker, line.color);
        area.draw(&sample).map_err(plot_error)?;
        area.draw(&Text::new(short(&line.name, 24), (40, y), style.clone())).map_err(plot_error)?;
    }
    Ok(())
}

/// `text` cut to `max` characters (with an ellipsis).
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    text.chars().take(max - 1).chain(['…']).collect()
}

/// A filled marker of shape `marker`, in pixels around its anchor.
fn marker_shape(marker: usize, color: RGBColor) -> Polygon<(i32, i32)> {
    Polygon::new(MARKERS[marker % MARKERS.len()].to_vec(), color.filled())
}

/// A plotters error as an `anyhow` error.
fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::machine::Machine;
    use crate::results::Case;
    use crate::scenario::Scenario;

    const TEXT: &str = r#"
name = "t"
title = "T"
question = "Q?"
kind = "produce"
path = "inproc"
[sweep]
partitions = [1, 10, 100]
flush = ["os", "sync"]
[[chart]]
name = "by-flush"
title = "Throughput by flush"
x = "partitions"
x_label = "partitions"
y = "mb_per_s"
y_label = "MB/s"
series = "flush"
log_x = true
[[chart]]
name = "plain"
title = "Throughput"
x = "partitions"
x_label = "partitions"
y = "mb_per_s"
y_label = "MB/s"
[[chart]]
name = "log-log"
title = "Latency"
x = "partitions"
x_label = "partitions"
y = "p99_ms"
y_label = "p99 (ms)"
log_x = true
log_y = true
[[chart]]
name = "empty"
title = "Nothing"
x = "partitions"
x_label = "partitions"
y = "no_such_metric"
y_label = "?"
[verdict]
metric = "mb_per_s"
higher_is_better = true
"#;

    fn case(engine: &str, round: u32, partitions: u64, flush: &str, mb: f64) -> Case {
        let mut point = BTreeMap::new();
        point.insert("flush".to_string(), serde_json::json!(flush));
        point.insert("partitions".to_string(), serde_json::json!(partitions));
        let mut metrics = BTreeMap::new();
        metrics.insert("mb_per_s".to_string(), mb);
        metrics.insert("p99_ms".to_string(), mb / 100.0);
        Case {
            engine: engine.into(),
            round,
            label: format!("flush={flush} partitions={partitions}"),
            point,
            metrics,
            baseline: BTreeMap::new(),
        }
    }

    fn results(cases: Vec<Case>) -> RunResults {
        let scenario = Scenario::parse(TEXT, Path::new("t.toml"), false).unwrap().file;
        RunResults { run: "r".into(), quick: true, scenario, machine: Machine::default(), cases }
    }

    fn full() -> RunResults {
        let mut cases = Vec::new();
        for round in 0..2 {
            for flush in ["os", "sync"] {
                for partitions in [1, 10, 100] {
                    cases.push(case("segment", round, partitions, flush, 100.0 + partitions as f64));
                    cases.push(case("commitlog", round, partitions, flush, 300.0 - partitions as f64));
                }
            }
        }
        results(cases)
    }

    fn check_files(files: &[ChartFile]) {
        for file in files {
            let svg = std::fs::read_to_string(&file.svg).unwrap();
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
            assert!(svg.contains("<text"), "chart text is drawn");
            let png = std::fs::read(&file.png).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
            assert!(png.len() > 1000);
        }
    }

    #[test]
    fn renders_every_chart_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let files = render(&full(), dir.path(), "run1").unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.svg.file_stem().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["run1-by-flush", "run1-plain", "run1-log-log", "run1-empty"]);
        assert_eq!(files[0].svg, dir.path().join("run1-by-flush.svg"));
        assert_eq!(files[0].png, dir.path().join("run1-by-flush.png"));
        check_files(&files);
        let svg = std::fs::read_to_string(&files[0].svg).unwrap();
        assert!(svg.contains("segment, flush=sync") && svg.contains("commitlog, flush=os"));
        assert!(std::fs::read_to_string(&files[3].svg).unwrap().contains("no data"));
    }

    #[test]
    fn single_points_and_equal_values_do_not_break_the_axes() {
        let dir = tempfile::tempdir().unwrap();
        let single = results(vec![case("segment", 0, 10, "os", 5.0), case("commitlog", 0, 10, "os", 5.0)]);
        check_files(&render(&single, dir.path(), "single").unwrap());
        let none = results(Vec::new());
        check_files(&render(&none, dir.path(), "none").unwrap());
    }

    #[test]
    fn lines_are_per_engine_and_series_value_sorted_by_x() {
        let r = full();
        let lines = lines(&r, &r.scenario.chart[0], &[]);
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["segment, flush=os", "segment, flush=sync", "commitlog, flush=os", "commitlog, flush=sync"]);
        assert_eq!(lines[0].points, [(1.0, 101.0), (10.0, 110.0), (100.0, 200.0)]);
        assert_ne!(lines[0].color, lines[2].color);
        let plain = super::lines(&r, &r.scenario.chart[1], &[]);
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[0].points.len(), 6);
    }

    #[test]
    fn text_values_on_the_x_axis_are_categories() {
        let mut r = full();
        let mut chart = r.scenario.chart[1].clone();
        chart.name = "by-flush-category".into();
        chart.x = "flush".into();
        chart.series = Some("partitions".into());
        chart.log_x = true;
        let names = categories(&r, &chart);
        assert_eq!(names, ["os", "sync"]);
        assert!(categories(&r, &r.scenario.chart[1]).is_empty(), "numbers stay numbers");
        let lines = lines(&r, &chart, &names);
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0].name, "segment, partitions=1");
        // Six lines side by side over half a category: the first a quarter minus a twelfth left of it.
        let shift = -0.25 + 0.5 / 12.0;
        assert_eq!(lines[0].points, [(shift, 101.0), (1.0 + shift, 101.0)]);
        assert_eq!(lines[5].points.iter().map(|p| p.0).collect::<Vec<_>>(), [-shift, 1.0 - shift]);
        assert_eq!(category_axis(2).range, -0.5..1.5);
        assert_eq!(x_tick_label(&names, &1.0), "sync");
        assert_eq!(x_tick_label(&names, &0.5), "");
        assert_eq!(x_tick_label(&[], &0.5), "0.5");
        r.scenario.chart = vec![chart];
        let dir = tempfile::tempdir().unwrap();
        let files = render(&r, dir.path(), "cat").unwrap();
        check_files(&files);
        let svg = std::fs::read_to_string(&files[0].svg).unwrap();
        assert!(svg.contains("\nsync\n") && svg.contains("\nos\n"), "the categories label the ticks");
    }

    #[test]
    fn ranges_and_ticks() {
        assert_eq!(zero_based_range(&[10.0, 20.0]), 0.0..22.0);
        assert_eq!(zero_based_range(&[]), 0.0..1.0);
        assert_eq!(zero_based_range(&[0.0, 0.0]), 0.0..1.0);
        assert_eq!(linear_range(&[5.0, 5.0]), 2.5..7.5);
        assert_eq!(linear_range(&[0.5]), 0.25..0.75);
        assert_eq!(linear_range(&[0.0]), 0.0..1.0);
        assert_eq!(tick_label(&-5.6e-17), "0");
        let r = log_range(&[7.0]);
        assert!(r.start > 0.0 && r.end / r.start >= 4.0 - 1e-9);
        assert_eq!(log_ticks(&(0.5..20_000.0)), [1.0, 10.0, 100.0, 1000.0, 10000.0]);
        assert_eq!(log_ticks(&(150.0..1200.0)), [200.0, 500.0, 1000.0]);
        assert!(log_ticks(&log_range(&[1.2, 1.3])).len() >= 2);
        assert_eq!(x_axis(&[64.0, 1024.0, 64.0], true).ticks, [64.0, 1024.0]);
        assert_eq!(tick_label(&1048576.0), "1048576");
        assert_eq!(tick_label(&0.25), "0.25");
        assert_eq!(tick_label(&2.5), "2.5");
    }
}
