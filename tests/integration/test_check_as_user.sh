#!/usr/bin/env bash
# test_check_as_user.sh — rete-broker --check-config run as an unprivileged
# user. The tests run as root, whom access(2) lets write any folder, so a
# check of a folder's permissions cannot fail in them; here it can.
#
#   state    [broker] state in a folder the user may not write (root's,
#            0755): a problem naming the folder, the user and the cause,
#            exit 2; beside the store, in a folder the user owns: fine.
#
# Exit 77 (ctest: SKIP), with the reason, when it cannot run the check as
# another user: not root, no setpriv (util-linux), or that user cannot
# run the build's programs (a folder above them it may not enter).
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
. "$(dirname "$0")/lib.sh"
itest_init check-as-user

U=65534 # nobody
skip() {
	echo "SKIP: $*"
	exit 77
}
[ "$(id -u)" = 0 ] || skip "not root: the check cannot be run as another user"
command -v setpriv >/dev/null || skip "no setpriv (util-linux): the check cannot be run as another user"
as_user() { setpriv --reuid=$U --regid=$U --clear-groups -- "$@"; }
as_user "$BIN/rete-broker" --version >/dev/null 2>&1 ||
	skip "uid $U cannot run $BIN/rete-broker (a folder above it it may not enter)"

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi Sociali" | broker_ini
# the user's own: the broker's folder (store, state, access record,
# sockets) and the keys; the test's folder stays root's, open to enter
chmod 755 "$DIR"
chown -R $U:$U "$DIR/broker" "$DIR/keys"
mkdir "$DIR/roots"
chmod 755 "$DIR/roots"
bini=$DIR/broker/broker.ini
cp "$bini" "$bini.orig"
check() { run as_user "$BIN/rete-broker" -c "$bini" --check-config; }

what="as uid $U, state beside the store (the user's folder)"
check
expect 0 "fine"
lacks "[broker] state"
what="as uid $U, state in a folder of root's (0755)"
sed -i -e "s#^\\[broker\\]\$#[broker]\\nstate = $DIR/roots/broker.state#" "$bini"
check
expect 2 "[broker] state: the folder $DIR/roots cannot be written by this user (uid $U)" \
	"Permission denied"
what="as root, the same file (root may write the folder)"
run "$BIN/rete-broker" -c "$bini" --check-config
lacks "[broker] state"

[ "$FAILS" = 0 ] || exit 1
echo "ok"
