#!/usr/bin/env bash
# Runs `janus bench produce` and `janus bench consume` against a release `janusd` on loopback, one client,
# 1 KiB messages, one topic of each engine. Usage: client/scripts/bench.sh [MESSAGES] [PARTITIONS]
# Build first: cargo build --release -p janus-server -p janus-client
set -euo pipefail
messages=${1:-500000}
partitions=${2:-1}
target=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')}
bin=$target/release
data=$(mktemp -d)
log=$(mktemp)
"$bin/janusd" --data-dir "$data" --grpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$log"' EXIT
for _ in $(seq 100); do grep -q 'janusd listening' "$log" && break; sleep 0.1; done
grpc=$(grep -o 'grpc=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
metrics=$(grep -o 'metrics=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
export JANUS_BROKER=http://$grpc JANUS_METRICS=http://$metrics/metrics
for engine in segment commitlog; do
  topic=bench-$engine
  "$bin/janus" topic create "$topic" --engine $engine --partitions "$partitions" >/dev/null
  echo "== $engine, $partitions partition(s), $messages x 1024 B"
  "$bin/janus" bench produce "$topic" --messages "$messages" --size 1024 ${PRODUCE_FLAGS:-}
  "$bin/janus" bench consume "$topic" --messages "$messages" --size 1024 ${CONSUME_FLAGS:-}
done
