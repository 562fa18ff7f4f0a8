//! The quick mode, run as CI runs it: every scenario at tiny size on both engines, then charts and report.
//! It checks the harness end to end (scenario files, drivers, baselines, results, charts, report), not the
//! engines' speed.

use std::path::Path;
use std::process::Command;

fn scenario_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn quick_mode_runs_every_scenario_on_both_engines_and_reports() {
    // E2b runs the `janusd` binary beside `janus-exp` (`cargo test --workspace` builds both).
    let janusd = Path::new(env!("CARGO_BIN_EXE_janus-exp")).with_file_name("janusd");
    assert!(janusd.exists(), "{} is missing: cargo build -p janus-server --bin janusd", janusd.display());
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_janus-exp"))
        .args(["run", "--quick", "--run-id", "ci", "--out"])
        .arg(out.path())
        .status()
        .expect("janus-exp runs");
    assert!(status.success(), "janus-exp run --quick failed: {status}");
    let names = scenario_names();
    assert_eq!(names.len(), 14, "E1-E11, E2b, E2c and E5b each have a scenario file: {names:?}");
    let report = std::fs::read_to_string(out.path().join("runs/ci/report.md")).expect("report.md written");
    for name in &names {
        let jsonl = std::fs::read_to_string(out.path().join(name).join("ci.jsonl")).expect("results written");
        let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["type"], "run", "{name}: the header comes first");
        assert!(lines[0]["machine"]["cores"].as_u64().unwrap() >= 1, "{name}: machine facts recorded");
        let cases: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "case").collect();
        for engine in ["segment", "commitlog"] {
            let mine: Vec<_> = cases.iter().filter(|c| c["engine"] == engine).collect();
            assert!(!mine.is_empty(), "{name}: no case ran on {engine}");
            for case in mine {
                let metrics = case["metrics"].as_object().unwrap();
                assert!(!metrics.is_empty(), "{name}: {engine} case without metrics");
                assert!(
                    metrics.values().all(|v| v.as_f64().is_some_and(f64::is_finite)),
                    "{name}: {engine}: every metric is a finite number: {metrics:?}"
                );
                assert!(case["baseline"]["append_mb_per_s"].as_f64().unwrap() > 0.0, "{name}: append baseline");
                assert!(case["baseline"]["sendfile_mb_per_s"].as_f64().unwrap() > 0.0, "{name}: sendfile baseline");
            }
        }
        let charts: Vec<_> = std::fs::read_dir(out.path().join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "svg"))
            .collect();
        assert!(charts.len() >= 2, "{name}: an SVG and a PNG per chart: {charts:?}");
        assert!(report.contains(&format!("{name}/ci.jsonl")), "{name}: the report links its raw results");
    }
}
