#!/usr/bin/env bash
# scripts/bench.sh [--quick] [--log-size N] [--agencies N] [--conns N]
#                  [--dir DIR] [--json FILE] [--threads N]
# Builds rete (RelWithDebInfo, its own build folder) and runs bench/rete_bench,
# which starts the real rete-broker and prints one table, all measured in the
# same run: raw Ed25519 rates and the bounds they set (ingest: cores x verify;
# closed loop, protocol 4: cores / (2 signs + 3 verifies)), the broker's durable
# ingest (1 verify thread and every core) with its CPU per message by thread
# (the committer signs one checkpoint per commit), the closed loop (64 in flight per sender), receipt latency
# at 100/1000/5000 msg/s, a log grown to N entries (default 1,000,000) with
# ingest and start-up at 1%, 10% and 100% of it, the auditor's rate, bytes
# on disk per entry, the broker's memory; last, the targets of issue 15 with
# their ratios (the broker's CPU per message beyond its one verification, in
# verifications' worth: CPU time, robust on a shared machine; the rates and
# latencies are wall clock, meaningful on a quiet one). The results also go to JSON
# (default: build-bench/bench.json). A benchmark, not a test: nothing here
# fails on a slow machine. --dir should be on the disk the broker will use
# (fsync speed decides the ingest and latency rows). Measure on a quiet
# machine: the load average is printed at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."

build="${RETE_BENCH_BUILD:-build-bench}"
json=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    --json) json="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$json" ] || json="$build/bench.json"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target rete_bench rete-broker -j"$(nproc)" >/dev/null
echo "machine: $(nproc) cores, $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*: //')"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); disk of ${TMPDIR:-/tmp}: $(df -h "${TMPDIR:-/tmp}" | awk 'NR==2 {print $1", "$4" free"}')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$build/bin/rete_bench" --json "$json" "${args[@]}"
echo
echo "results as JSON: $json"
