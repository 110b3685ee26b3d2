#!/usr/bin/env bash
# scripts/package.sh [--out DIR] [--no-lintian] — build the Debian package
# from this tree (debian/, dpkg-buildpackage -b) and check it with lintian.
#
# Installs what it needs first (scripts/setup). The tree is copied (the
# files git knows, plus new ones not ignored) into DIR/src (DIR defaults to
# build-package/, which git ignores), so the tree itself stays as it is.
# The package's version is the one of CMakeLists.txt's project() (0.0.0
# when it has none) plus the git commit when built from a checkout. Leaves
# DIR/rete_VERSION_ARCH.deb and prints its path on the last line. Exit 0
# built (and no lintian errors), 1 lintian found errors, 2 the build failed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
out=build-package
lint=1
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=${2:?--out needs a folder}; shift 2 ;;
	--no-lintian) lint=0; shift ;;
	-h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "scripts/package.sh: unknown option '$1'; accepted: --out DIR, --no-lintian" >&2; exit 2 ;;
	esac
done

./scripts/setup

version=$(sed -nE 's/^project\(rete[[:space:]]+VERSION[[:space:]]+([0-9][0-9.]*).*/\1/p' CMakeLists.txt | head -1)
version=${version:-0.0.0}
files_cmd=()
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	stamp=$(git -C "$src" log -1 --format=%cd --date=format:%Y%m%d%H%M)
	version="$version+git$stamp.$(git -C "$src" rev-parse --short HEAD)"
	files_cmd=(git -C "$src" ls-files -z --cached --others --exclude-standard)
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/src" "$out"/rete_* "$out"/rete-dbgsym_*
mkdir -p "$out/src/rete"
if [ ${#files_cmd[@]} -gt 0 ]; then
	# only files that still exist (a deleted file stays listed until committed)
	"${files_cmd[@]}" | (cd "$src" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$src" --null -T - -cf - | tar -C "$out/src/rete" -xf -
else
	tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$out/src/rete" -xf -
fi

# The changelog's top entry gets this build's version.
date=$(date -R)
{
	echo "rete ($version) unstable; urgency=medium"
	echo
	echo "  * Built from the tree by scripts/package.sh."
	echo
	echo " -- $(sed -n 's/^Maintainer: //p' debian/control)  $date"
} >"$out/src/rete/debian/changelog"

echo "package.sh: building rete $version in $out/src/rete"
(cd "$out/src/rete" &&
	DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
		dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1) || {
	tail -40 "$out/build.log" >&2
	echo "package.sh: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
	exit 2
}
mv "$out"/src/rete_* "$out"/src/rete-dbgsym_* "$out"/ 2>/dev/null || true
deb=$(ls "$out"/rete_*.deb)

if [ "$lint" = 1 ]; then
	echo "package.sh: lintian"
	# --fail-on error: warnings are printed, errors fail the build
	if ! lintian --fail-on error --info "$out"/rete_*.changes; then
		echo "package.sh: lintian found errors" >&2
		exit 1
	fi
fi
echo "$deb"
