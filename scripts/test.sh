#!/usr/bin/env bash
# scripts/test.sh [--sanitize] — install what is missing, build, run every
# test with ctest. --sanitize does the same in a separate AddressSanitizer +
# UBSan build (build-sanitize/).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
for arg in "$@"; do
  case "$arg" in
    --sanitize) build=build-sanitize; flags=(-DCMAKE_BUILD_TYPE=Debug -DRETE_SANITIZE=ON) ;;
    -h|--help) echo "usage: scripts/test.sh [--sanitize]"; exit 0 ;;
    *) echo "scripts/test.sh: unknown option '$arg'; accepted: --sanitize" >&2; exit 2 ;;
  esac
done

./scripts/setup
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
if [ "$build" = build-sanitize ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cd "$build"
# Twice as many tests as cores at once: the integration tests mostly wait
# (on heartbeats, timeouts, a broker's start), a whole sanitizer pass using
# less than one core on average (session 18: 441 s of CPU in 479 s at -j4 on
# two cores, against 959 s at -j2).
ctest --output-on-failure -j"$(($(nproc) * 2))"
