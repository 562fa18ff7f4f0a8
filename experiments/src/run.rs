//! Running scenarios: every point on every engine, alternating the engine order round by round
//! (A B, B A, ...), with the baselines measured beside each point in each round.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::baselines;
use crate::drivers;
use crate::machine::Machine;
use crate::results::{Case, Line, Writer};
use crate::scenario::Scenario;

/// Where and how to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Run id: the results file stem and the report's directory.
    pub run_id: String,
    /// Quick mode (the scenarios were loaded with their quick overrides).
    pub quick: bool,
    /// Results root (`results/<scenario>/<run>.jsonl` go under it).
    pub out: PathBuf,
    /// Where the engines' files go (each case gets a fresh directory, removed after it).
    pub work_dir: PathBuf,
}

/// Runs one scenario; returns the path of its results file. A failing case is reported and skipped, so that a
/// long run keeps the rest; the number of failed cases is returned beside the path.
pub fn run_scenario(scenario: &Scenario, options: &RunOptions) -> Result<(PathBuf, usize)> {
    let file = &scenario.file;
    let path = options.out.join(&file.name).join(format!("{}.jsonl", options.run_id));
    std::fs::create_dir_all(&options.work_dir).with_context(|| format!("creating {}", options.work_dir.display()))?;
    // Before the results file is (re)created: rewriting a committed one would mark the commit `-dirty`.
    let machine = Machine::collect(&options.work_dir);
    let mut writer = Writer::create(&path)?;
    writer.write(&Line::Run {
        run: options.run_id.clone(),
        quick: options.quick,
        started_unix_s: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        scenario: Box::new(file.clone()),
        machine,
    })?;
    let mut failed = 0;
    for round in 0..file.rounds {
        for (i, point) in scenario.points.iter().enumerate() {
            let case_dir = tempfile::Builder::new()
                .prefix(&format!("{}-r{round}-p{i}-", file.name))
                .tempdir_in(&options.work_dir)
                .context("creating a case directory")?;
            let expected_bytes = (point.workload.messages as f64 * point.workload.mean_message_bytes()) as u64;
            let baseline = baselines::measure(case_dir.path(), &point.workload, expected_bytes)?;
            let mut order = file.engines.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for engine in order {
                let dir = case_dir.path().join(&engine);
                std::fs::create_dir_all(&dir)?;
                nix::unistd::sync();
                let started = Instant::now();
                match drivers::run(file.kind, file.path, &engine, &dir, &point.workload, round) {
                    Ok(mut metrics) => {
                        if let Some(key) = drivers::baseline_key(file.kind)
                            && let Some(base) = baseline.get(key)
                        {
                            let ours = metrics.get("wire_mb_per_s").or(metrics.get("mb_per_s")).copied();
                            if let Some(ours) = ours {
                                metrics.insert("ratio_to_baseline".into(), ours / base);
                            }
                        }
                        eprintln!(
                            "{} round {round} [{}] {engine}: {} ({:.1} s)",
                            file.name,
                            point.label(),
                            headline(&metrics, &file.verdict.metric),
                            started.elapsed().as_secs_f64()
                        );
                        writer.write(&Line::Case(Case {
                            engine: engine.clone(),
                            round,
                            label: point.label(),
                            point: point.values.clone(),
                            metrics,
                            baseline: baseline.clone(),
                        }))?;
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{} round {round} [{}] {engine}: FAILED: {e:#}", file.name, point.label());
                    }
                }
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
    }
    Ok((path, failed))
}

/// `metric=value` for progress lines.
fn headline(metrics: &std::collections::BTreeMap<String, f64>, metric: &str) -> String {
    match metrics.get(metric) {
        Some(v) => format!("{metric} {v:.3}"),
        None => format!("{metric} missing"),
    }
}

/// The scenario files in `dir`, sorted by name.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
