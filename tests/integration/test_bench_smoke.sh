#!/usr/bin/env bash
# test_bench_smoke.sh — rete_bench --quick runs to the end and prints every
# row of its table with a positive rate, and writes the same rows as JSON.
# No timing is asserted: only that each measure ran and gave a number.
set -euo pipefail

bin="${RETE_BIN:?RETE_BIN must name the folder of the built programs}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/rete-bench-smoke-XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT

TMPDIR="$tmp" "$bin/rete_bench" --quick --json "$tmp/bench.json" >"$tmp/out.txt"

rows=(
  "ed25519 sign, 1 thread"
  "ed25519 sign, all cores"
  "ed25519 verify, 1 thread"
  "ed25519 verify, all cores"
  "store append, batch 1"
  "store append, batch 10"
  "store append, batch 100"
  "store append, batch 1000"
  "audit verify, no replay"
  "audit verify, with replay"
)
for row in "${rows[@]}"; do
  line="$(grep -F -- "$row " "$tmp/out.txt" || true)"
  if [ -z "$line" ]; then
    echo "FAIL: no row '$row' in:" >&2
    cat "$tmp/out.txt" >&2
    exit 1
  fi
  rate="$(printf '%s\n' "${line#"$row"}" | awk '{print $1}')"
  if ! awk -v r="$rate" 'BEGIN { exit !(r + 0 > 0) }'; then
    echo "FAIL: row '$row' has no positive rate: '$line'" >&2
    exit 1
  fi
  if ! grep -qF -- "\"name\": \"$row\"" "$tmp/bench.json"; then
    echo "FAIL: row '$row' missing from the JSON output" >&2
    cat "$tmp/bench.json" >&2
    exit 1
  fi
done
grep -q '"verifyBound"' "$tmp/bench.json"
# the temporary stores were removed
if ls "$tmp" | grep -q '^rete-bench-\|^rete-verify-'; then
  echo "FAIL: rete_bench left folders behind in $tmp:" >&2
  ls "$tmp" >&2
  exit 1
fi
echo "ok: ${#rows[@]} rows with positive rates"
