# Sourced by the scripts: one persistent target directory shared by every clone (a clean RocksDB build
# takes many minutes here), and at most two build jobs on this two-core machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/janus-target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
