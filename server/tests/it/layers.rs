//! The layer rules of `../shared/DESIGN.md` ("The broker: layers"), checked on the workspace itself:
//! engines are storage only (no tokio, no server, no protocol, no RocksDB, not even through another
//! workspace crate), the contract crate knows no engine, faces reach storage only through the core, only the engine
//! set names a concrete engine, and the client never imports an engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this file is `server/tests/it/layers.rs`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("server/ has a parent").to_path_buf()
}

/// Every workspace package: name -> names of its normal (not dev, not build) dependencies, as its
/// manifest declares them. Third-party crates appear as leaves: the rules below name the crates no engine may
/// reach, and a workspace crate reaching one of them directly is what this catches (`--no-deps` keeps the
/// check offline).
fn normal_dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let mut graph = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("package name").to_string();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("dependency name").to_string())
            .collect();
        graph.insert(name, deps);
    }
    graph
}

/// Every package `package` depends on, directly or not, through normal dependencies.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![package.to_string()];
    while let Some(p) = stack.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

fn forbidden_in(graph: &BTreeMap<String, BTreeSet<String>>, package: &str, forbidden: &[&str]) -> Vec<String> {
    let deps = closure(graph, package);
    forbidden.iter().filter(|f| deps.contains(**f)).map(|f| format!("{package} depends on {f}")).collect()
}

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// `(file, word)` for every file under `dir` (except `allowed`) that mentions one of `words` in code.
fn mentions(dir: &Path, words: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(dir) {
        if allowed.iter().any(|a| file.ends_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source is UTF-8");
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for w in words {
            if code.contains(w) {
                found.push(format!("{} mentions {w}", file.display()));
            }
        }
    }
    found
}

#[test]
fn engines_are_storage_only() {
    let graph = normal_dependency_graph();
    let storage_only = ["tokio", "janus-server", "janus-core", "janus-proto", "rocksdb", "tonic"];
    let mut violations = Vec::new();
    for engine in ["janus-segment", "janus-commitlog", "janus-api"] {
        assert!(graph.contains_key(engine), "{engine} is a workspace package");
        violations.extend(forbidden_in(&graph, engine, &storage_only));
    }
    violations.extend(forbidden_in(&graph, "janus-api", &["janus-segment", "janus-commitlog"]));
    violations.extend(forbidden_in(&graph, "janus-segment", &["janus-commitlog"]));
    violations.extend(forbidden_in(&graph, "janus-commitlog", &["janus-segment"]));
    assert!(violations.is_empty(), "layer rules broken:\n{}", violations.join("\n"));
}

#[test]
fn the_client_and_the_faces_never_reach_storage_directly() {
    let graph = normal_dependency_graph();
    let mut violations =
        forbidden_in(&graph, "janus-client", &["janus-segment", "janus-commitlog", "janus-api", "rocksdb"]);
    // janusd's own crate (runtime and faces) reaches engines and RocksDB only through janus-core.
    let direct = &graph["janus-server"];
    for f in ["janus-segment", "janus-commitlog", "rocksdb"] {
        if direct.contains(f) {
            violations.push(format!("janus-server depends on {f} directly"));
        }
    }
    let root = workspace_root();
    violations.extend(mentions(&root.join("server/src/faces"), &["janus_segment", "janus_commitlog", "rocksdb"], &[]));
    violations.extend(mentions(&root.join("server/src"), &["janus_segment", "janus_commitlog", "rocksdb::"], &[]));
    assert!(violations.is_empty(), "layer rules broken:\n{}", violations.join("\n"));
}

#[test]
fn only_the_engine_set_names_a_concrete_engine() {
    let root = workspace_root();
    let violations = mentions(
        &root.join("server"),
        &["SegmentEngine", "CommitLogEngine", "EngineKind::Segment =>", "EngineKind::Commitlog =>"],
        &["core/src/topics/engine_set.rs", "src/faces/grpc/convert.rs", "tests/it/layers.rs"],
    );
    assert!(violations.is_empty(), "concrete engines named outside the engine set:\n{}", violations.join("\n"));
}
