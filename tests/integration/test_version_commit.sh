#!/usr/bin/env bash
# test_version_commit.sh — --version names the commit that was built, not
# the one of the last configure.
#
#   script   cmake/rete_version.cmake on a git repository of its own: the
#            header names its commit; after a new commit, the new one; after
#            an edit, -dirty; run again unchanged, the file is not rewritten
#            (nothing rebuilt); without .git, an empty commit and no error.
#   build    the build's target rete_version_h exists (every build runs it)
#            and leaves the build's rete_version.h naming what `git
#            describe --always --dirty` says of the source now; rete version
#            --json prints that header's commit (checked when the source is
#            a git checkout).
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
. "$(dirname "$0")/lib.sh"
itest_init test-version-commit
script=$RETE_SOURCE_DIR/cmake/rete_version.cmake
[ -f "$script" ] || fail "no $script"
command -v git >/dev/null || fail "git is needed (scripts/setup installs it)"

# commit_in FILE: the RETE_VERSION_COMMIT of a generated header
commit_in() { sed -n 's/^#define RETE_VERSION_COMMIT "\(.*\)"$/\1/p' "$1"; }
gen() { cmake -DSRC="$1" -DOUT="$2" -DVERSION=9.8.7 -P "$script" >/dev/null 2>&1; }

# --- the script ---------------------------------------------------------------
repo=$DIR/repo
mkdir -p "$repo"
git -C "$repo" init -q
git -C "$repo" -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m one
out=$DIR/rete_version.h
gen "$repo" "$out" || bad "script: cmake -P failed"
want=$(git -C "$repo" describe --always --dirty)
[ "$(commit_in "$out")" = "$want" ] || bad "script: header says '$(commit_in "$out")', want '$want'"
grep -q '^#define RETE_VERSION_STRING "9.8.7"$' "$out" || bad "script: no version 9.8.7 in: $(cat "$out")"
before=$(stat -c %Y.%y "$out")
sleep 1.1 # a rewrite would show in the modification time
gen "$repo" "$out"
[ "$(stat -c %Y.%y "$out")" = "$before" ] || bad "script: rewritten though nothing changed"
git -C "$repo" -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m two
gen "$repo" "$out"
want2=$(git -C "$repo" describe --always --dirty)
[ "$want2" != "$want" ] || bad "script: the second commit has the same name"
[ "$(commit_in "$out")" = "$want2" ] || bad "script: after a commit the header says '$(commit_in "$out")', want '$want2'"
echo x >"$repo/file"
git -C "$repo" add file
gen "$repo" "$out"
case "$(commit_in "$out")" in
*-dirty) ;;
*) bad "script: an uncommitted change is not -dirty: '$(commit_in "$out")'" ;;
esac
mkdir -p "$DIR/tarball"
gen "$DIR/tarball" "$DIR/t.h" || bad "script: failed without .git"
[ -f "$DIR/t.h" ] && [ -z "$(commit_in "$DIR/t.h")" ] || bad "script: without .git: $(cat "$DIR/t.h" 2>&1)"

# --- the build ----------------------------------------------------------------
build=$(dirname "$RETE_BIN")
hdr=$(find "$build" -name rete_version.h -not -path '*/CMakeFiles/*' | head -n 1)
[ -n "$hdr" ] || bad "build: no rete_version.h under $build"
# the programs were built from the header as it is now
built=$(commit_in "$hdr")
json=$("$RETE_BIN/rete" version --json)
if [ -n "$built" ]; then
	grep -qF "\"$built\"" <<<"$json" || bad "build: rete version --json does not name '$built': $json"
fi
run_out=$(cmake --build "$build" --target rete_version_h 2>&1) ||
	bad "build: no target rete_version_h (the commit is read at configure time only): $run_out"
if [ -e "$RETE_SOURCE_DIR/.git" ] && git -C "$RETE_SOURCE_DIR" rev-parse >/dev/null 2>&1; then
	now=$(git -C "$RETE_SOURCE_DIR" describe --always --dirty)
	[ "$(commit_in "$hdr")" = "$now" ] ||
		bad "build: $hdr says '$(commit_in "$hdr")' after the target ran, the source is at '$now'"
else
	echo "test_version_commit: the source is no git checkout: the build's commit is not compared" >&2
fi

if [ "$FAILS" -gt 0 ]; then
	echo "test_version_commit: $FAILS failure(s)" >&2
	exit 1
fi
echo "test_version_commit: all passed"
