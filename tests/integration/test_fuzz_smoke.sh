#!/usr/bin/env bash
# test_fuzz_smoke.sh — every libFuzzer target builds, passes over its
# regression inputs (tests/fuzz/regressions/TARGET/: inputs that once
# crashed) and fuzzes 5 seconds from its seed corpus without a crash.
#
# It builds the fuzz targets (clang, -DRETE_FUZZ=ON) in fuzz-smoke/ beside
# the ctest build's bin/, only the fuzz targets, through scripts/fuzz.sh.
# clang and libclang-rt-14-dev come with scripts/setup.
set -euo pipefail
src=${RETE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${RETE_BIN:-$src/build/bin}
build=$(cd "$bin/.." && pwd)/fuzz-smoke

if ! command -v clang >/dev/null; then
  echo "test_fuzz_smoke: clang is missing; scripts/setup installs it" >&2
  exit 1
fi
# The fuzz targets are a build of their own (clang, ASan and UBSan), the
# same whichever build runs this test: CI's sanitizer pass (.ci/run) would
# only build and run them a second time. Skipped there (exit 77: ctest's
# SKIP), unless RETE_FUZZ_SMOKE=1 asks for it.
if [ "${RETE_FUZZ_SMOKE:-auto}" = auto ] &&
	grep -q '^RETE_SANITIZE:BOOL=ON' "$(cd "$bin/.." && pwd)/CMakeCache.txt" 2>/dev/null; then
  echo "test_fuzz_smoke: skipped in the sanitizer build: the fuzz targets are built with their own sanitizers and run in the normal build's pass (RETE_FUZZ_SMOKE=1 runs them here too)"
  exit 77
fi
seconds=${RETE_FUZZ_SMOKE_SECONDS:-5}
status=0
RETE_FUZZ_BUILD=$build RETE_FUZZ_WORK=$build/work \
  "$src/scripts/fuzz.sh" "$seconds" --jobs 2 | tee "$build.out" || status=$?

# Each target's line: name executions cov crashes. A target that ran no
# input at all would pass silently: check that each executed something.
targets=$(ls "$src"/tests/fuzz/fuzz_*.c | wc -l)
ran=$(awk '$1 ~ /^fuzz_/ && $2 > 0 && $4 == 0' "$build.out" | wc -l)
failed=$((targets - ran))
echo "fuzz smoke: $ran passed, $failed failed"
if [ $status -ne 0 ] || [ $failed -ne 0 ]; then
  # The work folder goes; what crashed must not: each crashing input is
  # kept in fuzz-crashes/ and shown here (base64, with the sanitizer's
  # report), so a crash seen once in CI can be reproduced and made a
  # regression input (tests/fuzz/regressions/TARGET/).
  mkdir -p "$build/fuzz-crashes"
  for a in "$build"/work/*/artifacts/*; do
    [ -f "$a" ] || continue
    t=$(basename "$(dirname "$(dirname "$a")")")
    cp "$a" "$build/fuzz-crashes/$t-$(basename "$a")"
    echo "--- $t: $(basename "$a") (kept in $build/fuzz-crashes/), base64:"
    # under pipefail, head closing the pipe on a long input would make
    # base64's SIGPIPE end the script here (the inputs after it not kept)
    { base64 -w 76 "$a" | head -200; } || true
    echo "--- $t: the end of its log:"
    tail -n 60 "$build/work/$t/fuzz.log" 2>/dev/null || true
  done
  # a regression input that crashes again is in the source tree; its
  # sanitizer's report is not, and the work folder goes
  for r in "$build"/work/*/regressions.log; do
    [ -f "$r" ] || continue
    t=$(basename "$(dirname "$r")")
    grep -q "ERROR\|SUMMARY\|deadly signal" "$r" || continue
    echo "--- $t: a regression input crashed; the end of its log:"
    tail -n 60 "$r" || true
  done
fi
rm -rf "$build/work"
[ $status -eq 0 ] && [ $failed -eq 0 ]
