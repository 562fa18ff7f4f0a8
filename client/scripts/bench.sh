#!/usr/bin/env bash
# End-to-end `janus bench` through a release `janusd` on loopback (one client, one topic per engine and
# round, 1 KiB messages), beside the raw baselines measured in the same run: `dd` into a new file and the
# bench-support baselines (write(2) to a file, loopback TCP write(2) and sendfile(2)). Rounds alternate the
# engines' order. Prints the load average before and after.
#
# Usage: client/scripts/bench.sh [MESSAGES] [PARTITIONS] [ROUNDS]
# Build first: cargo build --release -p janus-server -p janus-client -p janus-bench-support --examples
# Extra flags: PRODUCE_FLAGS="--mode stream", CONSUME_FLAGS="--mode fetch", BENCH_FLAGS="--json".
set -euo pipefail
messages=${1:-500000}
partitions=${2:-1}
rounds=${3:-3}
target=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')}
bin=$target/release
data=$(mktemp -d)
log=$(mktemp)
pid=
trap '[[ -n $pid ]] && { kill $pid 2>/dev/null; wait $pid 2>/dev/null; }; rm -rf "$data" "$log"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== baselines (same filesystem as the broker's data, $((messages * 1024)) bytes)"
dd if=/dev/zero of="$data/dd.bin" bs=1M count=$((messages * 1024 / 1048576)) conv=fdatasync 2>&1 | tail -n1 | sed 's/^/dd (with a final fdatasync): /'
dd if=/dev/zero of="$data/dd2.bin" bs=1M count=$((messages * 1024 / 1048576)) 2>&1 | tail -n1 | sed 's/^/dd (page cache only): /'
rm -f "$data/dd.bin" "$data/dd2.bin"
if [[ -x "$target/release/examples/baselines" ]]; then
  "$target/release/examples/baselines" "$data" $((messages * 1024))
fi
"$bin/janusd" --data-dir "$data" --grpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'janusd listening' "$log" && break; sleep 0.1; done
grpc=$(grep -o 'grpc=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
metrics=$(grep -o 'metrics=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
export JANUS_BROKER=http://$grpc
export JANUS_METRICS=http://$metrics/metrics
for round in $(seq "$rounds"); do
  if (( round % 2 )); then order="segment commitlog"; else order="commitlog segment"; fi
  for engine in $order; do
    topic=bench-$engine-$round
    "$bin/janus" topic create "$topic" --engine $engine --partitions "$partitions" >/dev/null
    echo "== round $round: $engine, $partitions partition(s), $messages x 1024 B"
    "$bin/janus" bench produce "$topic" --messages "$messages" --size 1024 ${PRODUCE_FLAGS:-} ${BENCH_FLAGS:-}
    "$bin/janus" bench consume "$topic" --messages "$messages" --size 1024 ${CONSUME_FLAGS:-} ${BENCH_FLAGS:-}
    "$bin/janus" topic delete "$topic" >/dev/null
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
