//! Summary tables, verdicts and the per-run `report.md`.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::machine::Machine;
use crate::plot::ChartFile;
use crate::results::RunResults;

/// Metrics shown first in a summary table, in this order, with their column headers.
const PREFERRED: [(&str, &str); 10] = [
    ("mb_per_s", "MB/s"),
    ("msgs_per_s", "msg/s"),
    ("cpu_s_per_gb", "CPU s/GB"),
    ("ratio_to_baseline", "ratio to baseline"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("p999_ms", "p99.9 ms"),
    ("recovery_s", "recovery s"),
    ("data_mb", "data MB"),
    ("delivered_mb", "delivered MB"),
];

/// Metrics not shown in a summary table (bookkeeping, not results) unless the verdict or a chart uses them.
const HIDDEN: [&str; 3] = ["messages", "seconds", "latency_samples"];

/// Baselines shown first in a summary table, with their column headers; any others follow by name.
const BASELINES: [(&str, &str); 2] =
    [("append_mb_per_s", "append baseline MB/s"), ("sendfile_mb_per_s", "sendfile baseline MB/s")];

/// Two medians closer than this factor are a tie.
const TIE: f64 = 1.05;

/// How the figures of a report were produced.
const METHOD: &str = "Every point of a scenario's sweep runs on both engines in each round, one engine after \
the other, and the order alternates from round to round (A B, then B A, ...) so that neither engine always \
runs first. Figures are medians over rounds. MB is 10^6 bytes, GB 10^9 bytes. CPU s/GB is the CPU time \
(user + system, from `getrusage`) of the whole process, engine and load generator together, per GB of \
payload. Baselines are measured in the same round, beside each point: a raw sequential `write(2)` of the \
same size on the same filesystem, and a raw `sendfile(2)` of a cached file over loopback; \
`ratio_to_baseline` is the engine's MB/s over the baseline's MB/s.";

/// How to read the baseline columns, printed after [`METHOD`].
const BASELINES_NOTE: &str = "`append_mb_per_s` is plain `write(2)` of one batch's size to a fresh file in the \
case's directory (with `fdatasync(2)` after each write when the scenario's flush policy is `sync`); \
`sendfile_mb_per_s` is `sendfile(2)` of a cached 128 MiB file to a loopback socket drained by a thread, and \
`sendfile_cold_mb_per_s` the same file after eviction. Writes are compared by the bytes handed to the engine \
(`wire_mb_per_s`), reads by the bytes shipped to the socket; `mb_per_s` counts message values only.";

/// A column of a summary table.
enum Column {
    /// The median over rounds of a metric of one engine.
    Metric {
        /// The metric's name.
        name: String,
        /// The column header.
        header: String,
    },
    /// The median over both engines of a baseline figure.
    Baseline {
        /// The baseline's name.
        name: String,
        /// The column header.
        header: String,
    },
}

impl Column {
    /// The column header.
    fn header(&self) -> &str {
        match self {
            Column::Metric { header, .. } | Column::Baseline { header, .. } => header,
        }
    }

    /// The value of a row.
    fn value(&self, results: &RunResults, label: &str, engine: &str) -> Option<f64> {
        match self {
            Column::Metric { name, .. } => results.median(label, engine, name),
            Column::Baseline { name, .. } => results.baseline_median(label, name),
        }
    }
}

/// The value columns of a summary table: metrics present in any case (preferred ones first), then baselines.
fn columns(results: &RunResults) -> Vec<Column> {
    let metrics = results.metric_names();
    let preferred = PREFERRED.iter().filter(|(name, _)| metrics.iter().any(|m| m == name));
    let mut out: Vec<Column> =
        preferred.map(|(name, header)| Column::Metric { name: name.to_string(), header: header.to_string() }).collect();
    let used = |m: &str| results.scenario.verdict.metric == m || results.scenario.chart.iter().any(|c| c.y == m);
    let other = metrics
        .iter()
        .filter(|m| !PREFERRED.iter().any(|(p, _)| p == m) && (!HIDDEN.contains(&m.as_str()) || used(m)))
        .map(|m| Column::Metric { name: m.clone(), header: m.clone() });
    out.extend(other);
    let baselines = baseline_names(results);
    for name in baselines {
        let header = BASELINES.iter().find(|(b, _)| *b == name).map_or_else(|| name.clone(), |(_, h)| h.to_string());
        out.push(Column::Baseline { name, header });
    }
    out
}

/// Baseline names present in any case: the known ones first, then the others sorted.
fn baseline_names(results: &RunResults) -> Vec<String> {
    let mut present: Vec<String> = results.cases.iter().flat_map(|c| c.baseline.keys().cloned()).collect();
    present.sort();
    present.dedup();
    let known = BASELINES.iter().map(|(b, _)| b.to_string()).filter(|b| present.contains(b));
    let others: Vec<String> = present.iter().filter(|p| !BASELINES.iter().any(|(b, _)| b == p)).cloned().collect();
    known.chain(others).collect()
}

/// A Markdown table of medians: one row per point and engine, points in run order, engines in scenario order.
pub fn summary_table(results: &RunResults) -> String {
    let columns = columns(results);
    let mut header = vec!["point".to_string(), "engine".into(), "rounds".into()];
    header.extend(columns.iter().map(|c| c.header().to_string()));
    let mut align = vec![":--".to_string(), ":--".into(), "--:".into()];
    align.extend(columns.iter().map(|_| "--:".to_string()));
    let mut lines = vec![table_row(&header), table_row(&align)];
    for label in results.labels() {
        for engine in &results.scenario.engines {
            let rounds = results.cases_of(&label, engine).count();
            let mut row = vec![format!("`{label}`"), engine.clone(), rounds.to_string()];
            row.extend(columns.iter().map(|c| format_number(c.value(results, &label, engine))));
            lines.push(table_row(&row));
        }
    }
    lines.join("\n") + "\n"
}

/// One Markdown table row (cells with `|` escaped).
fn table_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |", cells.join(" | "))
}

/// About three significant digits: `1234`, `56.7`, `8.90`, `0.123`; missing as `–`.
fn format_number(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if !v.is_finite() => "–".into(),
        Some(0.0) => "0".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) if v.abs() >= 0.001 => format!("{v:.3}"),
        Some(v) => format!("{v:.2e}"),
    }
}

/// A ratio ≥ 1 as `1.83×`, `12.4×`, `150×`.
fn format_factor(factor: f64) -> String {
    if factor >= 100.0 {
        format!("{factor:.0}×")
    } else if factor >= 10.0 {
        format!("{factor:.1}×")
    } else {
        format!("{factor:.2}×")
    }
}

/// How the two engines compare at one point.
enum Outcome {
    /// One engine is better by more than [`TIE`].
    Win {
        /// The better engine.
        winner: String,
        /// Better over worse (≥ 1).
        factor: f64,
        /// The winner's median.
        best: f64,
        /// The loser's median.
        worst: f64,
    },
    /// The medians are within [`TIE`] of each other.
    Tie {
        /// The first engine's median.
        a: f64,
        /// The second engine's median.
        b: f64,
    },
    /// A median is missing or not positive.
    NoComparison {
        /// The first engine's median.
        a: Option<f64>,
        /// The second engine's median.
        b: Option<f64>,
    },
}

/// Compares the medians of the verdict metric of engines `a` and `b` at `label`.
fn compare(results: &RunResults, label: &str, a: &str, b: &str) -> Outcome {
    let verdict = &results.scenario.verdict;
    let (va, vb) = (results.median(label, a, &verdict.metric), results.median(label, b, &verdict.metric));
    let (Some(x), Some(y)) = (va, vb) else { return Outcome::NoComparison { a: va, b: vb } };
    if !(x > 0.0 && y > 0.0) {
        return Outcome::NoComparison { a: va, b: vb };
    }
    let factor = x.max(y) / x.min(y);
    if factor < TIE {
        return Outcome::Tie { a: x, b: y };
    }
    let a_wins = (x > y) == verdict.higher_is_better;
    let (winner, best, worst) = if a_wins { (a, x, y) } else { (b, y, x) };
    Outcome::Win { winner: winner.to_string(), factor, best, worst }
}

/// The verdict of each point on the scenario's verdict metric, after an overall line.
///
/// With fewer than two engines there is nothing to compare, and the one line says so.
pub fn verdicts(results: &RunResults) -> Vec<String> {
    let engines = &results.scenario.engines;
    let [a, b, ..] = engines.as_slice() else {
        return vec![format!("only {} ran: nothing to compare", engines.join(", "))];
    };
    let metric = &results.scenario.verdict.metric;
    let outcomes: Vec<(String, Outcome)> =
        results.labels().into_iter().map(|label| (label.clone(), compare(results, &label, a, b))).collect();
    let mut lines = vec![overall(results, &outcomes, a, b)];
    for (label, outcome) in &outcomes {
        let text = match outcome {
            Outcome::Win { winner, factor, best, worst } => format!(
                "{winner} by {} ({} vs {} {metric})",
                format_factor(*factor),
                format_number(Some(*best)),
                format_number(Some(*worst))
            ),
            Outcome::Tie { a: x, b: y } => format!(
                "tie ({a} {} vs {b} {} {metric}, within {:.0}%)",
                format_number(Some(*x)),
                format_number(Some(*y)),
                (TIE - 1.0) * 100.0
            ),
            Outcome::NoComparison { a: x, b: y } => {
                format!("no comparison ({a} {} vs {b} {} {metric})", format_number(*x), format_number(*y))
            }
        };
        lines.push(format!("`{label}`: {text}"));
    }
    lines
}

/// The overall line: wins per engine, ties, and the largest margin.
fn overall(results: &RunResults, outcomes: &[(String, Outcome)], a: &str, b: &str) -> String {
    let wins = |engine: &str| {
        outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Win { winner, .. } if winner == engine)).count()
    };
    let ties = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Tie { .. })).count();
    let missing = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::NoComparison { .. })).count();
    let largest = outcomes
        .iter()
        .filter_map(|(label, o)| match o {
            Outcome::Win { winner, factor, .. } => Some((label, winner, *factor)),
            _ => None,
        })
        .max_by(|x, y| x.2.total_cmp(&y.2));
    let margin = match largest {
        Some((label, winner, factor)) => format!("`{label}` ({winner} by {})", format_factor(factor)),
        None => "none".into(),
    };
    let verdict = &results.scenario.verdict;
    let direction = if verdict.higher_is_better { "higher" } else { "lower" };
    let missing = if missing > 0 { format!(", no comparison {missing}") } else { String::new() };
    format!(
        "{a} wins {} of {} points, {b} wins {}, ties {ties}{missing}; largest margin: {margin} \
         (compared on `{}`, {direction} is better)",
        wins(a),
        outcomes.len(),
        wins(b),
        verdict.metric
    )
}

/// The Markdown section of one scenario: title, question, workload, charts, medians, verdict, raw data.
///
/// Links are relative to the directory `relative_to` (where the report is written).
pub fn scenario_section(results: &RunResults, jsonl: &Path, charts: &[ChartFile], relative_to: &Path) -> String {
    let file = &results.scenario;
    let mut out = format!("## {}\n\n*{}*\n\n", file.title, file.question);
    out += &format!("{}\n\n", workload_line(results));
    out += &format!("Measured at {}.\n\n", results.machine.provenance());
    for chart in charts {
        out += &format!(
            "![{title}]({png})\n\n[{title} (SVG)]({svg})\n\n",
            title = chart.title,
            png = relative_link(&chart.png, relative_to),
            svg = relative_link(&chart.svg, relative_to),
        );
    }
    out += &format!("**Medians over {} round(s)**\n\n{}\n", file.rounds, summary_table(results));
    out += "**Verdict (computed from the medians above)**\n\n";
    for line in verdicts(results) {
        out += &format!("- {line}\n");
    }
    let name = jsonl.file_name().map_or_else(|| jsonl.display().to_string(), |n| n.to_string_lossy().into_owned());
    out += &format!("\nRaw results: [`{name}`]({})\n", relative_link(jsonl, relative_to));
    out
}

/// `Workload: produce, inproc; base ...; sweeping ...; N rounds.`
fn workload_line(results: &RunResults) -> String {
    let file = &results.scenario;
    // The variants are single words, so their lower-cased names are the ones scenario files use.
    let kind = format!("{:?}", file.kind).to_lowercase();
    let path = format!("{:?}", file.path).to_lowercase();
    let base: Vec<String> = file.workload.iter().map(|(k, v)| format!("`{k}={}`", toml_text(v))).collect();
    let sweep: Vec<String> = file
        .sweep
        .iter()
        .map(|(k, v)| match v {
            toml::Value::Array(values) => {
                format!("`{k}` ({})", values.iter().map(toml_text).collect::<Vec<_>>().join(", "))
            }
            other => format!("`{k}` ({})", toml_text(other)),
        })
        .collect();
    let base = if base.is_empty() { "defaults".to_string() } else { base.join(", ") };
    let sweep = if sweep.is_empty() { "nothing".to_string() } else { sweep.join(", ") };
    format!(
        "Workload: `{kind}` via `{path}` on {}; base workload {base}; sweeping {sweep}.",
        file.engines.join(" and ")
    )
}

/// A TOML value as text (strings without quotes).
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `path` relative to the directory `base`, with `/` separators and spaces escaped, for a Markdown link.
fn relative_link(path: &Path, base: &Path) -> String {
    let rel = relative_path(path, base);
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.join("/").replace(' ', "%20")
}

/// `path` relative to the directory `base` (`../` where needed); both are made absolute against the
/// current directory first and `.`/`..` resolved lexically, without touching the filesystem.
fn relative_path(path: &Path, base: &Path) -> PathBuf {
    let (path, base) = (normalize(path), normalize(base));
    let common = path.components().zip(base.components()).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in base.components().skip(common) {
        out.push("..");
    }
    for part in path.components().skip(common) {
        out.push(part);
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// `path` made absolute and with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(part);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Writes the run's `report.md`: header, machine, method, then the sections.
pub fn write_report(path: &Path, run: &str, quick: bool, machine: &Machine, sections: &[String]) -> Result<()> {
    let mut text = format!("# Janus A/B run {run}\n\n");
    if quick {
        text += "**quick mode: tiny sizes, not for conclusions**\n\n";
    }
    text += &format!("## Machine\n\n{}\n\n## Method\n\n{METHOD}\n\n{BASELINES_NOTE}\n\n", machine.describe());
    let sections: Vec<&str> = sections.iter().map(|s| s.trim_end()).collect();
    text += &sections.join("\n\n");
    text += "\n";
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::results::Case;
    use crate::scenario::Scenario;

    const TEXT: &str = r#"
name = "t"
title = "E0: test"
question = "Which is faster?"
kind = "produce"
path = "inproc"
rounds = 3
[workload]
message_bytes = 100
[sweep]
partitions = [1, 10]
[verdict]
metric = "mb_per_s"
higher_is_better = true
"#;

    fn case(engine: &str, round: u32, partitions: u64, metrics: &[(&str, f64)]) -> Case {
        let mut point = BTreeMap::new();
        point.insert("partitions".to_string(), serde_json::json!(partitions));
        let mut baseline = BTreeMap::new();
        baseline.insert("append_mb_per_s".to_string(), 1000.0 + round as f64);
        Case {
            engine: engine.into(),
            round,
            label: format!("partitions={partitions}"),
            point,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            baseline,
        }
    }

    /// Partition 1: segment 200 (median of 100, 200, 300) vs commitlog 100; partition 10: 300 vs 310 (tie).
    fn results(text: &str) -> RunResults {
        let scenario = Scenario::parse(text, Path::new("t.toml"), false).unwrap().file;
        let mut cases = Vec::new();
        for round in 0..3 {
            let r = round as f64;
            let extra = [("messages", 5.0), ("wire_mb_per_s", 7.0)];
            cases.push(case("segment", round, 1, &[("mb_per_s", 100.0 * (r + 1.0)), extra[0], extra[1]]));
            cases.push(case("commitlog", round, 1, &[("mb_per_s", 100.0), ("p99_ms", 2.0 + r)]));
            cases.push(case("segment", round, 10, &[("mb_per_s", 300.0)]));
            cases.push(case("commitlog", round, 10, &[("mb_per_s", 310.0)]));
        }
        RunResults { run: "r1".into(), quick: false, scenario, machine: Machine::default(), cases }
    }

    #[test]
    fn summary_table_has_a_row_per_point_and_engine_with_medians() {
        let table = summary_table(&results(TEXT));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 4, "{table}");
        assert_eq!(lines[0], "| point | engine | rounds | MB/s | p99 ms | wire_mb_per_s | append baseline MB/s |");
        assert_eq!(lines[2], "| `partitions=1` | segment | 3 | 200 | – | 7.00 | 1001 |");
        assert_eq!(lines[3], "| `partitions=1` | commitlog | 3 | 100 | 3.00 | – | 1001 |");
        assert!(lines[4].starts_with("| `partitions=10` | segment | 3 | 300 |"));
        assert!(!table.contains("messages"));
    }

    #[test]
    fn numbers_have_about_three_significant_digits() {
        assert_eq!(format_number(Some(1234.4)), "1234");
        assert_eq!(format_number(Some(56.78)), "56.8");
        assert_eq!(format_number(Some(8.9)), "8.90");
        assert_eq!(format_number(Some(0.1234)), "0.123");
        assert_eq!(format_number(Some(0.0)), "0");
        assert_eq!(format_number(None), "–");
        assert_eq!(format_factor(1.8), "1.80×");
        assert_eq!(format_factor(12.34), "12.3×");
    }

    #[test]
    fn verdicts_pick_the_winner_and_the_factor() {
        let v = verdicts(&results(TEXT));
        assert_eq!(v.len(), 3);
        assert!(v[0].starts_with("segment wins 1 of 2 points, commitlog wins 0, ties 1;"), "{}", v[0]);
        assert!(v[0].contains("largest margin: `partitions=1` (segment by 2.00×)"), "{}", v[0]);
        assert_eq!(v[1], "`partitions=1`: segment by 2.00× (200 vs 100 mb_per_s)");
        assert!(v[2].starts_with("`partitions=10`: tie"), "{}", v[2]);

        let lower = TEXT.replace("higher_is_better = true", "higher_is_better = false");
        let v = verdicts(&results(&lower));
        assert_eq!(v[1], "`partitions=1`: commitlog by 2.00× (100 vs 200 mb_per_s)");
        assert!(v[0].starts_with("segment wins 0 of 2 points, commitlog wins 1, ties 1;"), "{}", v[0]);

        let latency = TEXT.replace("metric = \"mb_per_s\"", "metric = \"p99_ms\"");
        let v = verdicts(&results(&latency));
        assert!(v[1].starts_with("`partitions=1`: no comparison"), "{}", v[1]);
        assert!(v[0].contains("no comparison 2"), "{}", v[0]);
    }

    #[test]
    fn relative_paths() {
        let rel = |p: &str, b: &str| relative_link(Path::new(p), Path::new(b));
        assert_eq!(rel("/r/e1/run.jsonl", "/r/runs/run"), "../../e1/run.jsonl");
        assert_eq!(rel("/r/runs/run/c.png", "/r/runs/run"), "c.png");
        assert_eq!(rel("/r/runs/run/charts/c.png", "/r/runs/run/"), "charts/c.png");
        assert_eq!(rel("/r/./a/../e1/x y.svg", "/r/runs"), "../e1/x%20y.svg");
        assert_eq!(rel("/other/x", "/r/runs"), "../../other/x");
        assert_eq!(rel("results/e1/x.jsonl", "results/runs/r"), "../../e1/x.jsonl");
    }

    #[test]
    fn section_and_report() {
        let r = results(TEXT);
        let charts =
            [ChartFile { title: "Chart C".into(), svg: "/r/runs/r1/t-c.svg".into(), png: "/r/runs/r1/t-c.png".into() }];
        let section = scenario_section(&r, Path::new("/r/t/r1.jsonl"), &charts, Path::new("/r/runs/r1"));
        assert!(section.starts_with("## E0: test\n\n*Which is faster?*\n\n"), "{section}");
        assert!(section.contains("`produce` via `inproc`"), "{section}");
        assert!(section.contains("`partitions` (1, 10)"), "{section}");
        assert!(section.contains("`message_bytes=100`"), "{section}");
        assert!(section.contains("Measured at commit unknown, load average 0.00 at start"), "{section}");
        assert!(section.contains("![Chart C](t-c.png)"), "{section}");
        assert!(section.contains("[Chart C (SVG)](t-c.svg)"), "{section}");
        assert!(section.contains("**Verdict (computed from the medians above)**\n\n- segment wins"), "{section}");
        assert!(section.contains("[`r1.jsonl`](../../t/r1.jsonl)"), "{section}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/r1/report.md");
        write_report(&path, "r1", true, &Machine::default(), std::slice::from_ref(&section)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Janus A/B run r1\n\n**quick mode: tiny sizes, not for conclusions**"));
        assert!(text.contains("## Machine\n\n0 cores"));
        assert!(text.contains("## Method\n\n") && text.contains("(`wire_mb_per_s`), reads by the bytes"));
        assert!(text.contains("counts message values only.\n\n## E0: test"), "{text}");
    }
}
