//! `janus-exp`: runs A/B experiments (scenario files) on both storage engines, writes the raw results, and
//! renders charts and a report.
//!
//! ```text
//! janus-exp run [--quick] [--run-id ID] [--out DIR] [--work-dir DIR] [SCENARIO.toml ...]
//! janus-exp report --run-id ID [--out DIR] [SCENARIO-NAME ...]
//! ```

mod baselines;
mod data;
mod drivers;
mod engines;
mod evict;
mod machine;
mod measure;
mod plot;
mod report;
mod results;
mod run;
mod scenario;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::results::RunResults;
use crate::run::RunOptions;
use crate::scenario::{Scenario, Workload};

/// The A/B experiment harness.
#[derive(Parser)]
#[command(name = "janus-exp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs scenarios (all of `experiments/scenarios/` when none are named) on both engines, then reports.
    Run {
        /// Tiny sizes (each scenario's `[quick]` overrides): checks the harness, not the engines.
        #[arg(long)]
        quick: bool,
        /// Run id (default: `full-<unix time>` or `quick-<unix time>`).
        #[arg(long)]
        run_id: Option<String>,
        /// Results root.
        #[arg(long, default_value = default_results())]
        out: PathBuf,
        /// Where the engines' files go while a case runs (default: a temp dir on the results' filesystem).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Scenario files.
        scenarios: Vec<PathBuf>,
    },
    /// Renders the charts and the report of an earlier run from its results files.
    Report {
        /// The run id.
        #[arg(long)]
        run_id: String,
        /// Results root.
        #[arg(long, default_value = default_results())]
        out: PathBuf,
    },
    /// (Internal) writes a workload and exits without a clean shutdown; used by the recovery experiment.
    #[command(hide = true)]
    CrashWriter {
        #[arg(long)]
        engine: String,
        #[arg(long)]
        dir: PathBuf,
        /// The workload as JSON.
        #[arg(long)]
        workload: String,
    },
}

/// `experiments/results` of this checkout.
fn default_results() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/results")
}

/// `experiments/scenarios` of this checkout.
fn default_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-exp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Run { quick, run_id, out, work_dir, scenarios } => run(quick, run_id, &out, work_dir, scenarios),
        Command::Report { run_id, out } => report(&run_id, &out).map(|path| println!("{}", path.display())),
        Command::CrashWriter { engine, dir, workload } => {
            let workload: Workload = serde_json::from_str(&workload).context("parsing --workload")?;
            drivers::recovery::crash_writer(&engine, &dir, &workload)
        }
    }
}

fn run(quick: bool, run_id: Option<String>, out: &Path, work_dir: Option<PathBuf>, files: Vec<PathBuf>) -> Result<()> {
    engines::raise_fd_limit();
    let files = if files.is_empty() { run::scenario_files(&default_scenarios())? } else { files };
    let scenarios = files.iter().map(|f| Scenario::load(f, quick)).collect::<Result<Vec<_>>>()?;
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let run_id = run_id.unwrap_or_else(|| format!("{}-{unix}", if quick { "quick" } else { "full" }));
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // The engines' files go on the results' filesystem unless told otherwise, in a dir removed at the end.
    let scratch = match work_dir {
        Some(dir) => tempfile::Builder::new().prefix("janus-exp-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix(".janus-exp-work-").tempdir_in(out)?,
    };
    let options = RunOptions { run_id: run_id.clone(), quick, out: out.to_path_buf(), work_dir: scratch.path().into() };
    let started = Instant::now();
    let mut failed = 0;
    for scenario in &scenarios {
        let t = Instant::now();
        let (path, f) = run::run_scenario(scenario, &options)?;
        failed += f;
        eprintln!("{}: {} in {:.0} s", scenario.file.name, path.display(), t.elapsed().as_secs_f64());
    }
    let names: Vec<String> = scenarios.iter().map(|s| s.file.name.clone()).collect();
    let report = write_report(&run_id, out, &names)?;
    eprintln!(
        "run {run_id}: {} scenarios in {:.0} s; report {}",
        scenarios.len(),
        started.elapsed().as_secs_f64(),
        report.display()
    );
    if failed > 0 {
        bail!("{failed} case(s) failed (see above); their results are missing from the report");
    }
    Ok(())
}

/// Regenerates the report of `run_id` from every `results/*/<run_id>.jsonl`.
fn report(run_id: &str, out: &Path) -> Result<PathBuf> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("listing {}", out.display()))? {
        let dir = entry?.path();
        if dir.join(format!("{run_id}.jsonl")).is_file()
            && let Some(name) = dir.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_string());
        }
    }
    if names.is_empty() {
        bail!("no results of run {run_id} under {}", out.display());
    }
    names.sort();
    write_report(run_id, out, &names)
}

/// Renders the charts of each scenario's results and writes `out/runs/<run_id>/report.md`.
fn write_report(run_id: &str, out: &Path, names: &[String]) -> Result<PathBuf> {
    let report_dir = out.join("runs").join(run_id);
    std::fs::create_dir_all(&report_dir)?;
    let mut sections = Vec::new();
    let mut machine = None;
    let mut quick = false;
    for name in names {
        let jsonl = out.join(name).join(format!("{run_id}.jsonl"));
        let results = RunResults::read(&jsonl)?;
        if results.run != run_id {
            bail!("{} holds run {}, not {run_id}", jsonl.display(), results.run);
        }
        let charts = plot::render(&results, &out.join(name), run_id)?;
        sections.push(report::scenario_section(&results, &jsonl, &charts, &report_dir));
        quick |= results.quick;
        machine.get_or_insert(results.machine.clone());
    }
    let path = report_dir.join("report.md");
    report::write_report(&path, run_id, quick, &machine.unwrap_or_default(), &sections)?;
    Ok(path)
}
