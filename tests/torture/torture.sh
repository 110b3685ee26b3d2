#!/usr/bin/env bash
# torture.sh — the long crash torture (not run by CI; CI runs the short one,
# tests/integration/test_torture_short.c, with 6 kills and 2 restores).
#
#   tests/torture/torture.sh [--build DIR] [--kills N] [--restores N] [--seed S]
#                            [--valgrind]
#
# Runs the driver of tests/torture/torture.h (compiled into the CI test
# program test_torture_short) with N kills (default 30) and N restore
# cycles (default 10; 0 for none): the real rete-broker and four
# rete-agent processes under continuous load, SIGKILL of the broker or a
# random agent at random moments, each restarted; each restore cycle is a
# hot `rete store backup` (verified), more traffic until the broker has
# signed a checkpoint the copy lacks, SIGKILL of the broker and the restore
# of docs/operations.md (store moved aside, the copy put in its place, the
# state file left, the broker started with --restore: a new log epoch).
# Then the checks (every file delivered exactly once with its receipt, or
# in failed/ with a reason; no duplicates; no witness alarm; rete audit
# verify) and the figures. The seed is printed; --seed S repeats the
# choices (kills, restores, load), not the processes' timing.
# --valgrind runs every broker and agent under valgrind memcheck (slow:
# use few kills and restores) and keeps the folder with the valgrind-*.log
# reports.
# Exit status: 0 when every check held, 1 otherwise, 2 on usage errors.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../../build"
kills=30
restores=10
seed=""
valgrind=""
while [ $# -gt 0 ]; do
	case "$1" in
	--build) [ $# -ge 2 ] || { echo "torture.sh: --build wants a value; see --help" >&2; exit 2; }; build="$2"; shift 2 ;;
	--kills) [ $# -ge 2 ] || { echo "torture.sh: --kills wants a value; see --help" >&2; exit 2; }; kills="$2"; shift 2 ;;
	--restores) [ $# -ge 2 ] || { echo "torture.sh: --restores wants a value; see --help" >&2; exit 2; }; restores="$2"; shift 2 ;;
	--seed) [ $# -ge 2 ] || { echo "torture.sh: --seed wants a value; see --help" >&2; exit 2; }; seed="$2"; shift 2 ;;
	--valgrind) valgrind=1; shift ;;
	-h|--help) sed -n '2,24p' "$0"; exit 0 ;;
	*) echo "torture.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
	esac
done
prog="$build/bin/test_torture_short"
if [ ! -x "$prog" ]; then
	echo "torture.sh: $prog not found; build first (cmake --build $build)" >&2
	exit 2
fi
case "$kills" in ''|*[!0-9]*) echo "torture.sh: --kills wants a number" >&2; exit 2 ;; esac
case "$restores" in ''|*[!0-9]*) echo "torture.sh: --restores wants a number" >&2; exit 2 ;; esac

export RETE_TORTURE_KILLS="$kills"
export RETE_TORTURE_RESTORES="$restores"
export RETE_BIN_DIR="$build/bin"
[ -n "$seed" ] && export RETE_TORTURE_SEED="$seed"
[ -n "$valgrind" ] && export RETE_VALGRIND=1
log=$(mktemp /tmp/rete-torture-run-XXXXXX.log)
status=0
"$prog" >"$log" 2>&1 || status=$?
grep -E '^torture' "$log" || true
if [ "$status" -ne 0 ]; then
	echo "torture.sh: FAILED (exit $status); the whole output is in $log" >&2
	exit 1
fi
rm -f "$log"
echo "torture.sh: passed"
