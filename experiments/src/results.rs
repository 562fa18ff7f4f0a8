//! Raw results (`results/<scenario>/<run>.jsonl`) and the summary derived from them.
//!
//! The first line of a results file is a [`Line::Run`] (the scenario as run and the machine facts); every
//! further line is one [`Line::Case`]: one point of the sweep, on one engine, in one round, with its metrics
//! and the baselines measured in the same round.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::scenario::ScenarioFile;

/// One measured case.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Case {
    /// The engine: `segment` or `commitlog`.
    pub engine: String,
    /// Round number, from 0.
    pub round: u32,
    /// The point's label (`partitions=100 flush=os`).
    pub label: String,
    /// The swept keys and their values.
    pub point: BTreeMap<String, serde_json::Value>,
    /// What was measured, by name (see [`crate::measure`] for the names and units).
    pub metrics: BTreeMap<String, f64>,
    /// Baselines measured in the same round beside this case (`append_mb_per_s`, `sendfile_mb_per_s`).
    pub baseline: BTreeMap<String, f64>,
}

/// One line of a results file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// The header: what ran, where, when.
    Run {
        /// Run id (also the file stem).
        run: String,
        /// Whether this was a quick-mode run.
        quick: bool,
        /// Seconds since the Unix epoch at the start.
        started_unix_s: u64,
        /// The scenario as run (after quick overrides).
        scenario: Box<ScenarioFile>,
        /// The machine.
        machine: Machine,
    },
    /// A measured case.
    Case(Case),
}

/// Appends lines to a results file, one JSON document per line, flushed after each.
pub struct Writer {
    file: File,
}

impl Writer {
    /// Creates (truncating) `path` and its directory.
    pub fn create(path: &Path) -> Result<Writer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Writer { file })
    }

    /// Writes one line.
    pub fn write(&mut self, line: &Line) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).context("writing a results line")?;
        self.file.flush().context("flushing the results file")
    }
}

/// A results file read back.
#[derive(Clone, Debug)]
pub struct RunResults {
    /// Run id.
    pub run: String,
    /// Quick mode or not.
    pub quick: bool,
    /// The scenario as run.
    pub scenario: ScenarioFile,
    /// The machine it ran on.
    pub machine: Machine,
    /// Every case, in the order run.
    pub cases: Vec<Case>,
}

impl RunResults {
    /// Reads a results file.
    pub fn read(path: &Path) -> Result<RunResults> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut header = None;
        let mut cases = Vec::new();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line).with_context(|| format!("{} line {}", path.display(), n + 1))? {
                Line::Run { run, quick, scenario, machine, .. } => header = Some((run, quick, *scenario, machine)),
                Line::Case(case) => cases.push(case),
            }
        }
        let Some((run, quick, scenario, machine)) = header else { bail!("{} has no run header line", path.display()) };
        Ok(RunResults { run, quick, scenario, machine, cases })
    }

    /// Labels of the points in the order they first appear.
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for case in &self.cases {
            if !out.contains(&case.label) {
                out.push(case.label.clone());
            }
        }
        out
    }

    /// The cases of one point on one engine (one per round).
    pub fn cases_of<'a>(&'a self, label: &'a str, engine: &'a str) -> impl Iterator<Item = &'a Case> + 'a {
        self.cases.iter().filter(move |c| c.label == label && c.engine == engine)
    }

    /// Median over rounds of a metric for one point on one engine (`None` if never measured).
    pub fn median(&self, label: &str, engine: &str, metric: &str) -> Option<f64> {
        let values: Vec<f64> = self.cases_of(label, engine).filter_map(|c| c.metrics.get(metric).copied()).collect();
        median(&values)
    }

    /// Median over every case of a point (both engines) of a baseline figure.
    pub fn baseline_median(&self, label: &str, key: &str) -> Option<f64> {
        let values: Vec<f64> =
            self.cases.iter().filter(|c| c.label == label).filter_map(|c| c.baseline.get(key).copied()).collect();
        median(&values)
    }

    /// The point values of a label.
    pub fn point(&self, label: &str) -> Option<&BTreeMap<String, serde_json::Value>> {
        self.cases.iter().find(|c| c.label == label).map(|c| &c.point)
    }

    /// Metric names present in any case, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.cases.iter().flat_map(|c| c.metrics.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }
}
