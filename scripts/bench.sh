#!/usr/bin/env bash
# scripts/bench.sh [--dir DIR] [--entries N] [--json FILE] [--quick] — build
# rete (release) and run bench/rete_bench, which prints one table: raw
# Ed25519 sign/verify rates, the store's durable append rate per batch size,
# and the auditor's verify rate beside its bound. A benchmark, not a test:
# nothing here fails on a slow machine. --dir should be on the disk the
# broker will use (fsync speed decides the append rows).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
for arg in "$@"; do
  case "$arg" in
    -h|--help)
      echo "usage: scripts/bench.sh [--dir DIR] [--entries N] [--json FILE] [--quick] [--threads N]"
      exit 0 ;;
  esac
done

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target rete_bench -j"$(nproc)" >/dev/null
echo "machine: $(nproc) cores, $(uname -srm)"
if [ -r /proc/cpuinfo ]; then
  grep -m1 'model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*: /cpu: /' || true
fi
echo
exec "$build/bin/rete_bench" "$@"
