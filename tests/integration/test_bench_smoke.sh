#!/usr/bin/env bash
# test_bench_smoke.sh — rete_bench --quick runs to the end against the real
# rete-broker and prints every row of its table with a positive number, and
# writes the same rows as JSON. No timing is asserted: only that each
# measure ran and gave a number, and that nothing was left behind.
set -euo pipefail

bin="${RETE_BIN:?RETE_BIN must name the folder of the built programs}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/rete-bench-smoke-XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT

if ! TMPDIR="$tmp" "$bin/rete_bench" --quick --json "$tmp/bench.json" \
    >"$tmp/out.txt" 2>"$tmp/err.txt"; then
  echo "FAIL: rete_bench --quick exited non-zero" >&2
  cat "$tmp/out.txt" "$tmp/err.txt" >&2
  exit 1
fi

rows=(
  "ed25519 sign, 1 thread"
  "ed25519 sign, all cores"
  "ed25519 verify, 1 thread"
  "ed25519 verify, all cores"
  "bound: broker ingest"
  "bound: closed loop"
  "fsync'd commit of 1, p50"
  "fsync'd commit of 1, p99"
  "broker ingest, 1 verify thr"
  "broker ingest, all cores"
  "closed loop"
  "receipt p50 @ 100/s"
  "receipt p99 @ 100/s"
  "receipt p999 @ 100/s"
  "receipt p50 @ 1000/s"
  "receipt p99 @ 1000/s"
  "receipt p999 @ 1000/s"
  "receipt p50 @ 5000/s"
  "receipt p99 @ 5000/s"
  "receipt p999 @ 5000/s"
  "store append to 30"
  "start-up, log of 30"
  "ingest at log 30"
  "store append to 300"
  "start-up, log of 300"
  "ingest at log 300"
  "store append to 3000"
  "start-up, log of 3000"
  "ingest at log 3000"
  "bytes on disk per entry"
  "audit verify, no replay"
  "audit verify, with replay"
  "broker RSS under load"
  "broker RSS, agencies connected"
  "target: ingest, all cores"
  "target: ingest, 1 verify thr"
  "target: closed loop"
  "target: p99 @ 1000/s"
  "target: audit verify"
)
for row in "${rows[@]}"; do
  line="$(awk -v r="$row " 'index($0, r) == 1 { print; exit }' "$tmp/out.txt")"
  if [ -z "$line" ]; then
    echo "FAIL: no row '$row' in:" >&2
    cat "$tmp/out.txt" >&2
    exit 1
  fi
  value="$(printf '%s\n' "${line#"$row"}" | awk '{print $1}')"
  if ! awk -v r="$value" 'BEGIN { exit !(r + 0 > 0) }'; then
    echo "FAIL: row '$row' has no positive value: '$line'" >&2
    exit 1
  fi
  if ! grep -qF -- "\"name\": \"$row\"" "$tmp/bench.json"; then
    echo "FAIL: row '$row' missing from the JSON output" >&2
    cat "$tmp/bench.json" >&2
    exit 1
  fi
done
# the broker's CPU beyond its verification: present, a number (a --quick run
# is too short for the clock ticks of /proc to give it a sign)
for row in "target: beyond 1 verify, all" "target: beyond 1 verify, 1 thr"; do
  if ! grep -qE "^$row +-?[0-9]+\.[0-9]+ +verifications" "$tmp/out.txt"; then
    echo "FAIL: no row '$row' with a number in:" >&2
    cat "$tmp/out.txt" >&2
    exit 1
  fi
done
# no message was refused or lost on the way
if grep -q "SOME REFUSED" "$tmp/out.txt"; then
  echo "FAIL: the broker refused benchmark messages:" >&2
  cat "$tmp/out.txt" "$tmp/err.txt" >&2
  exit 1
fi
grep -q '"logSize"' "$tmp/bench.json"
# the temporary folders and the brokers are gone
if ls "$tmp" | grep -q '^rete-bench-\|^rete-verify-'; then
  echo "FAIL: rete_bench left folders behind in $tmp:" >&2
  ls "$tmp" >&2
  exit 1
fi
if pgrep -f "rete-broker -c $tmp/" >/dev/null; then
  echo "FAIL: a broker started by rete_bench is still running" >&2
  exit 1
fi
echo "ok: ${#rows[@]} rows with positive values"
