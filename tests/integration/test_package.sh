#!/usr/bin/env bash
# test_package.sh — what an operator installs works from where it lands.
#
# 1. `DESTDIR=ROOT cmake --install BUILD --prefix /usr` puts the three
#    programs in /usr/bin (and no test, benchmark or fuzzer), the man pages
#    in /usr/share/man/man1, the units in /lib/systemd/system (naming
#    /usr/bin and an installed Documentation= file), the docs and examples
#    in /usr/share/doc/rete; the installed programs answer --help (and every
#    `rete COMMAND --help`), and --version once they accept it. Every
#    relative link of the installed README.md and docs (a page, an image,
#    an anchor's page) and every `examples/...` path the README names
#    resolves in /usr/share/doc/rete as installed (eyes12 #11: the
#    package's README linked docs/*.md and docs/img, and sent readers to
#    examples/systemd/, none of them there).
# 2. Every man page renders without a warning (man -l, groff -ww); rete(1)
#    has a section for every command of agents/cli/main.c's table and every
#    `rete audit` subcommand, and rete-broker(1) / rete-agent(1) document
#    every long option of their getopt tables: a new command or option
#    without docs fails here.
# 3. The Debian package (scripts/package.sh: dpkg-buildpackage, lintian with
#    no errors) unpacked with dpkg-deb -x into a second root passes the
#    same checks; its maintainer scripts create the users and never enable
#    or start a unit. As root where a mount namespace with an overlay of /
#    can be made, the package is also installed with dpkg -i into that
#    overlay (the host is untouched): users, folders and modes, units not
#    enabled, purge. Skipped (said so) when the packaging tools are missing
#    or RETE_TEST_PACKAGE=0, and in a sanitizer build (it tests packaging,
#    built with the package's own flags); RETE_TEST_PACKAGE=1 forces it.
set -uo pipefail
: "${RETE_BIN:?set RETE_BIN to the bin folder of the build}"
SRC=${RETE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(cd "$RETE_BIN/.." && pwd)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/rete-package.XXXXXX")
FAILS=0

cleanup() {
	# the overlay lives in its own mount namespace: nothing to unmount here
	rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

# --- the checks on one installed root ----------------------------------------

# check_man PAGE: renders without warnings
check_man() {
	local page=$1 out
	out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null)
	[ -z "$out" ] || fail "man -l $page warns: $out"
	if [[ $page == *.gz ]]; then
		out=$(zcat "$page" | groff -man -ww -z 2>&1)
	else
		out=$(groff -man -ww -z "$page" 2>&1)
	fi
	[ -z "$out" ] || fail "groff -man -ww $page warns: $out"
}

# check_program ROOT PROG: --help exits 0 and says usage; --version when
# the program accepts it
check_program() {
	local root=$1 prog=$2 out rc
	out=$("$root/usr/bin/$prog" --help 2>&1)
	rc=$?
	[ $rc -eq 0 ] || fail "$prog --help (installed in $root) exits $rc: $out"
	grep -q '^usage: ' <<<"$out" || fail "$prog --help prints no usage line: $out"
	out=$("$root/usr/bin/$prog" --version 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		grep -q '[0-9]' <<<"$out" || fail "$prog --version prints no version: $out"
	elif grep -qiE "unrecognized option|unknown (command|option)" <<<"$out"; then
		echo "note: $prog has no --version yet"
	else
		fail "$prog --version exits $rc: $out"
	fi
}

# check_doc_links ROOT: the relative links of the installed README.md and
# pages, and the README's `examples/...` paths, lead to installed files
check_doc_links() {
	local doc=$1/usr/share/doc/rete f link target p
	for f in "$doc"/*.md; do
		[ -f "$f" ] || continue
		while IFS= read -r link; do
			target=${link%%#*}
			case "$target" in
			'' | http:* | https:* | mailto:* | file:*) continue ;;
			esac
			[ -e "$(dirname "$f")/$target" ] ||
				fail "${f#"$1"} links $link, which the install does not hold"
		done < <(grep -oE '\]\([^) ]+\)' "$f" | sed -E 's/^\]\(//; s/\)$//')
	done
	while IFS= read -r p; do
		# a name with a wildcard (examples/agents/*.ini) needs one match
		compgen -G "$doc/$p" >/dev/null ||
			fail "/usr/share/doc/rete/README.md names $p, which the install does not hold"
	done < <(grep -oE '`examples/[^`]*`' "$doc/README.md" | tr -d '`')
}

# check_root ROOT MANSUFFIX: everything installed where it belongs
check_root() {
	local root=$1 sfx=$2 p f unit path s c
	for p in rete-broker rete-agent rete; do
		[ -x "$root/usr/bin/$p" ] || fail "$root/usr/bin/$p missing"
		check_program "$root" "$p"
		[ -f "$root/usr/share/man/man1/$p.1$sfx" ] ||
			fail "man page $root/usr/share/man/man1/$p.1$sfx missing"
	done
	for f in "$root"/usr/bin/*; do
		case "${f##*/}" in
		rete | rete-broker | rete-agent) ;;
		*) fail "$f installed: only the three programs belong in /usr/bin" ;;
		esac
	done
	for c in $(commands); do
		"$root/usr/bin/rete" "$c" --help >/dev/null 2>&1 ||
			fail "installed 'rete $c --help' does not exit 0"
	done
	for f in "$root"/usr/share/man/man*/*; do
		check_man "$f"
	done
	for unit in rete-broker.service rete-agent@.service; do
		f=$root/lib/systemd/system/$unit
		[ -f "$f" ] || { fail "$f missing"; continue; }
		for path in $(grep -E '^Exec[A-Za-z]*=' "$f" | sed -E 's/^[^=]*=[-@+!]*//; s/ .*//'); do
			case "$path" in
			*/rete*) [ -x "$root$path" ] ||
				fail "$unit runs $path, which the install does not hold" ;;
			*) [ -x "$path" ] || fail "$unit runs $path, which this system does not have" ;;
			esac
		done
		grep -q '/usr/local' "$f" && fail "$unit (installed for /usr) still names /usr/local"
		for path in $(sed -n 's/^Documentation=//p' "$f"); do
			case "$path" in
			file://*) [ -f "$root${path#file://}" ] ||
				fail "$unit: Documentation=$path is not installed" ;;
			man:*) p=${path#man:} # NAME(S)
				s=${p#*(}
				s=${s%)}
				p="$root/usr/share/man/man$s/${p%%(*}.$s$sfx"
				[ -f "$p" ] || fail "$unit: Documentation=$path: $p is not installed" ;;
			*) fail "$unit: Documentation=$path is neither file:// nor man:" ;;
			esac
		done
	done
	for f in README.md operations.md agent.md broker-config.md \
		examples/broker.ini examples/coord.ini examples/audit.ini \
		examples/agents/social.mantova.ini examples/messages/referral.json \
		examples/hooks/cpi.mantova.sh; do
		[ -f "$root/usr/share/doc/rete/$f" ] || fail "/usr/share/doc/rete/$f not installed"
	done
	[ -x "$root/usr/share/doc/rete/examples/hooks/cpi.mantova.sh" ] ||
		fail "the example hooks are installed without their execute bit"
	check_doc_links "$root"
}

# commands: the names of rete's command table (agents/cli/main.c)
commands() {
	sed -nE 's/^[[:space:]]*\{"([a-z-]+)", cmd_[a-z_]+,.*/\1/p' "$SRC/agents/cli/main.c"
}

# --- 1. cmake --install into a scratch root ------------------------------------

ROOT=$DIR/root
if ! out=$(DESTDIR="$ROOT" cmake --install "$BUILD" --prefix /usr 2>&1); then
	fail "DESTDIR=$ROOT cmake --install $BUILD --prefix /usr: $out"
fi
[ -n "$(commands)" ] || fail "no command found in agents/cli/main.c's table"
check_root "$ROOT" ""

# --- 2. the man pages cover every command and option ---------------------------

RETE1=$(MANWIDTH=200 man -l "$ROOT/usr/share/man/man1/rete.1" 2>/dev/null)
for c in $(commands); do
	grep -qE "^## rete $c( |\$)" "$SRC/docs/man/rete.1.scd" ||
		fail "docs/man/rete.1.scd has no section '## rete $c' for the command '$c' of agents/cli/main.c"
	# a subsection heading: indented 3 (the text under it 7)
	grep -qE "^   rete $c( |\$)" <<<"$RETE1" ||
		fail "rete(1) as installed has no section for 'rete $c'"
done
subs=$(sed -nE 's/.*"audit ([a-z|-]+) STORE_DIR.*/\1/p' "$SRC/agents/cli/main.c" | tr '|' ' ')
[ -n "$subs" ] || fail "no audit subcommand found in agents/cli/main.c's summary"
for s in $subs; do
	grep -qE "^## rete audit $s( |\$)" "$SRC/docs/man/rete.1.scd" ||
		fail "docs/man/rete.1.scd has no section '## rete audit $s'"
done
for pair in rete-broker:broker/main.c rete-agent:agents/agent/agent_main.c; do
	page=${pair%%:*}
	opts=$(grep -oE '\{"[a-z-]+", *(no|required|optional)_argument' "$SRC/${pair#*:}" |
		sed -E 's/\{"([a-z-]+)".*/\1/')
	[ -n "$opts" ] || fail "no long option found in ${pair#*:}"
	for o in $opts; do
		grep -qF -- "*--$o*" "$SRC/docs/man/$page.1.scd" ||
			fail "docs/man/$page.1.scd does not document --$o (${pair#*:})"
	done
done

# try_install DEB: as root, dpkg -i the package into an overlay of / in a
# private mount namespace (what it writes lands in a tmpfs and goes with the
# namespace), then check the users, folders, modes and units, reinstall,
# and purge. Skipped when the overlay cannot be made (not root, a container
# without the right to mount).
try_install() {
	local deb=$1 rc
	if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v chroot >/dev/null; then
		echo "note: not root: the package is not installed with dpkg -i"
		return
	fi
	cp "$deb" "$DIR/rete.deb"
	unshare -m bash -s "$DIR" >"$DIR/install.log" 2>&1 <<'SH'
set -u
D=$1
mkdir -p "$D/ov"
mount -t tmpfs tmpfs "$D/ov" 2>/dev/null || exit 77
mkdir -p "$D/ov/u" "$D/ov/w" "$D/ov/m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/ov/u,workdir=$D/ov/w" "$D/ov/m" 2>/dev/null || exit 77
M=$D/ov/m
mount --bind /proc "$M/proc" && mount --bind /dev "$M/dev" || exit 77
cp "$D/rete.deb" "$M/root/rete.deb"
chroot "$M" /bin/bash <<'IN'
f() { echo "FAIL: $*"; }
if getent passwd rete >/dev/null || [ -e /etc/rete ] || dpkg -s rete >/dev/null 2>&1; then
	echo "SKIP: this machine already has rete installed (or a user rete, or /etc/rete)"
	exit 77
fi
dpkg -i /root/rete.deb || f "dpkg -i rete.deb failed"
for u in rete rete-agent; do
	getent passwd $u | grep -q ':/usr/sbin/nologin$' || f "no system user $u with /usr/sbin/nologin: $(getent passwd $u)"
done
m() { [ "$(stat -c '%a %U:%G' "$1" 2>&1)" = "$2" ] || f "$1 is $(stat -c '%a %U:%G' "$1" 2>&1), expected $2"; }
m /etc/rete "755 root:root"
m /etc/rete/keys "750 root:rete"
m /etc/rete/agents "755 root:root"
m /var/lib/rete-broker "700 rete:rete"
m /var/lib/rete-agent "750 rete-agent:rete-agent"
ls /etc/systemd/system/*.wants 2>/dev/null | grep -q rete && f "a rete unit is enabled"
# the layout works for both: the broker's user reaches its keys, the
# agent's user its agent.ini (the issue: /etc/rete 0750 root:rete did not)
install -d -o root -g rete-agent -m 0750 /etc/rete/agents/cpi.mantova
install -o root -g rete-agent -m 0640 /dev/null /etc/rete/agents/cpi.mantova/agent.ini
install -o root -g rete -m 0640 /dev/null /etc/rete/broker.ini
su -s /bin/sh rete-agent -c 'cat /etc/rete/agents/cpi.mantova/agent.ini' || f "rete-agent cannot read its agent.ini"
su -s /bin/sh rete -c 'cat /etc/rete/broker.ini && ls /etc/rete/keys >/dev/null' || f "rete cannot read broker.ini or /etc/rete/keys"
su -s /bin/sh rete-agent -c 'ls /etc/rete/keys' 2>/dev/null && f "rete-agent can list the broker's /etc/rete/keys"
su -s /bin/sh rete -c 'cat /etc/rete/agents/cpi.mantova/agent.ini' 2>/dev/null && f "rete can read an agent's agent.ini"
rm -r /etc/rete/agents/cpi.mantova /etc/rete/broker.ini
dpkg -i /root/rete.deb || f "dpkg -i rete.deb a second time (reinstall) failed"
rete --help >/dev/null || f "rete --help after dpkg -i"
man -w rete-broker >/dev/null || f "man -w rete-broker after dpkg -i"
dpkg --purge rete || f "dpkg --purge rete failed"
[ -e /etc/rete ] && f "/etc/rete left after purging (it was empty)"
[ -d /var/lib/rete-broker ] || f "the purge removed /var/lib/rete-broker (the audit log lives there)"
exit 0
IN
SH
	rc=$?
	if [ $rc -eq 77 ]; then
		echo "note: no overlay of / could be made here ($(grep SKIP "$DIR/install.log" || echo "not allowed to mount")): dpkg -i not tried"
	elif [ $rc -ne 0 ] || grep -q '^FAIL: ' "$DIR/install.log"; then
		cat "$DIR/install.log" >&2
		fail "installing the package (dpkg -i in an overlay): see above"
	else
		echo "package installed, checked and purged in an overlay of /"
	fi
}

# --- 3. the Debian package -----------------------------------------------------

want=${RETE_TEST_PACKAGE:-auto}
if [ "$want" = auto ]; then
	if grep -q '^RETE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
		want=0
		echo "note: sanitizer build: the package part is left to the normal build"
	elif ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null ||
		! command -v lintian >/dev/null || ! command -v dpkg-deb >/dev/null; then
		want=0
		echo "note: dpkg-buildpackage, debhelper or lintian missing (scripts/setup installs them): package not built"
	else
		want=1
	fi
fi
if [ "$want" = 1 ]; then
	if ! "$SRC/scripts/package.sh" --out "$DIR/pkg" >"$DIR/package.log" 2>&1; then
		cat "$DIR/package.log" >&2
		fail "scripts/package.sh failed (the log is above)"
	else
		grep -E '^[EW]: ' "$DIR/package.log" | sed 's/^/lintian: /'
		deb=$(ls "$DIR"/pkg/rete_*.deb | head -1)
		dpkg-deb -x "$deb" "$DIR/debroot" || fail "dpkg-deb -x $deb"
		check_root "$DIR/debroot" ".gz"
		mkdir -p "$DIR/ctl" && dpkg-deb -e "$deb" "$DIR/ctl"
		# continuation lines joined, so one adduser call is one line
		sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$DIR/ctl/postinst" |
			grep -qE 'adduser --system.*[[:space:]]rete$' ||
			fail "the package's postinst does not create the system user rete"
		grep -qE 'deb-systemd-invoke (start|restart)|systemctl (start|enable)' "$DIR/ctl/postinst" &&
			fail "the package's postinst starts or enables a unit"
		grep -qE "deb-systemd-helper enable" "$DIR/ctl/postinst" &&
			! grep -q 'was-enabled' "$DIR/ctl/postinst" &&
			fail "the package's postinst enables a unit on a first install"
		dpkg-deb -f "$deb" Depends | grep -q adduser || fail "the package does not depend on adduser"
		try_install "$deb"
	fi
fi

if [ $FAILS -gt 0 ]; then
	echo "test_package: $FAILS failure(s)" >&2
	exit 1
fi
echo "test_package: ok"
