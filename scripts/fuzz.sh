#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [--jobs N] [TARGET...] — build the libFuzzer
# targets (clang, -DRETE_FUZZ=ON, ASan + UBSan) and run each one.
#
# For every target (tests/fuzz/fuzz_*.c, or the TARGETs named): first every
# file of tests/fuzz/regressions/TARGET/ is run once (inputs that crashed
# once; they must pass now), then the target fuzzes for SECONDS (default 60)
# starting from a copy of tests/fuzz/corpus/TARGET/ in a work folder (the
# committed corpus never grows). Prints per target: executions, coverage
# (libFuzzer's final "cov:"), crashes, and where a crashing input was saved.
# Inputs in tests/fuzz/open/TARGET/ are bugs found and reported but not yet
# fixed (in code still being written): they are run too and counted under
# "open", without failing the run; once fixed they move to regressions/.
# --jobs N runs N targets at a time (default 1).
#
# Environment: RETE_FUZZ_BUILD = the build folder (default build-fuzz/ in the
# project), RETE_FUZZ_WORK = where work folders, logs and crashing inputs go
# (default BUILD/fuzz-work; emptied first).
# Exit: 0 = no crash, 1 = a target crashed (or a regression input still
# crashes), 2 = usage or build error.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

seconds=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) [ $# -ge 2 ] || { echo "fuzz.sh: --jobs needs a number" >&2; exit 2; }
            jobs=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
               exit 0 ;;
    [0-9]*) seconds=$1 ;;
    fuzz_*) targets+=("$1") ;;
    *) echo "fuzz.sh: unknown argument '$1'; accepted: SECONDS, --jobs N, fuzz_NAME" >&2
       exit 2 ;;
  esac
  shift
done
case "$seconds$jobs" in *[!0-9]*) echo "fuzz.sh: SECONDS and N are whole numbers" >&2; exit 2 ;; esac
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
for t in "${targets[@]}"; do
  [ -f "tests/fuzz/$t.c" ] || { echo "fuzz.sh: no target $t (tests/fuzz/$t.c)" >&2; exit 2; }
done
command -v clang >/dev/null || { echo "fuzz.sh: clang is missing; run scripts/setup" >&2; exit 2; }

build=${RETE_FUZZ_BUILD:-$src/build-fuzz}
work=${RETE_FUZZ_WORK:-$build/fuzz-work}
echo "fuzz.sh: building ${#targets[@]} targets in $build"
if ! cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DRETE_FUZZ=ON \
     -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.cmake.log" 2>&1; then
  cat "$build.cmake.log" >&2; echo "fuzz.sh: cmake failed" >&2; exit 2
fi
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build.build.log" 2>&1; then
  grep -E 'error|Error' "$build.build.log" | head -30 >&2
  echo "fuzz.sh: build failed (log: $build.build.log)" >&2; exit 2
fi

rm -rf "$work"
mkdir -p "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run_one TARGET: regressions, then fuzzing; writes WORK/TARGET.result as
# "executions coverage crashes artifact".
run_one() {
  local t=$1 bin="$build/bin/$1" dir="$work/$1"
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  local crashes=0 artifact=-
  local reg="$src/tests/fuzz/regressions/$t"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
    if ! TMPDIR="$dir/tmp" env -u RETE_FUZZ_REPORT_ONLY "$bin" -runs=1 "$reg"/* >"$dir/regressions.log" 2>&1; then
      crashes=1
      artifact="$reg (see $dir/regressions.log)"
    fi
  fi
  local open=0 f
  if [ -d "$src/tests/fuzz/open/$t" ]; then
    for f in "$src/tests/fuzz/open/$t"/*; do
      [ -f "$f" ] || continue
      TMPDIR="$dir/tmp" env -u RETE_FUZZ_REPORT_ONLY "$bin" -runs=1 "$f" >>"$dir/open.log" 2>&1 ||
        open=$((open + 1))
    done
  fi
  if [ -d "$src/tests/fuzz/corpus/$t" ]; then
    cp -r "$src/tests/fuzz/corpus/$t/." "$dir/corpus/"
  fi
  TMPDIR="$dir/tmp" "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/fuzz.log" 2>&1
  local execs cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$dir/fuzz.log" | tail -1 | cut -d' ' -f2)
  local found
  found=$(find "$dir/artifacts" -type f | head -1)
  if [ -n "$found" ]; then
    crashes=$((crashes + $(find "$dir/artifacts" -type f | wc -l)))
    artifact=$found
  fi
  echo "${execs:-0} ${cov:-0} $crashes $open $artifact" >"$work/$t.result"
}

pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
wait

status=0
printf '%-22s %12s %8s %8s %5s  %s\n' target executions cov crashes open "crashing input"
for t in "${targets[@]}"; do
  if [ ! -f "$work/$t.result" ]; then
    printf '%-22s %12s %8s %8s %5s  %s\n' "$t" - - - - "did not run (log: $work/$t)"
    status=1
    continue
  fi
  read -r execs cov crashes open artifact <"$work/$t.result"
  printf '%-22s %12s %8s %8s %5s  %s\n' "$t" "$execs" "$cov" "$crashes" "$open" "$artifact"
  [ "$crashes" = 0 ] || status=1
done
if [ $status -ne 0 ]; then
  echo "fuzz.sh: a target crashed; the log is $work/TARGET/fuzz.log, the input beside it."
  echo "Reproduce: $build/bin/TARGET FILE"
fi
exit $status
