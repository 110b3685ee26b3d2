#!/usr/bin/env bash
# test_audit_state_dir.sh — `rete audit verify -c audit.ini --state FILE`
# when FILE's folder cannot take a new state (review of session 11). The
# folder is checked first, and a warning says the state will not be saved;
# the run goes on all the same, against the state saved there:
#
#   rollback    the broker's log replaced by a fresh one (a restore nobody
#               declared) and the state's folder read-only for the auditor:
#               the ALARM, exit 1 (the early check made it exit 2 "the
#               broker was not asked", hiding the alarm)
#   holds       the log extends the saved state, the folder read-only:
#               the log is verified ("holds"), then exit 2 because the state
#               could not be saved; the saved state is left as it was
#   no folder   --state in a folder that does not exist: the log is
#               verified, then exit 2 (nothing to save it in)
#
# The auditor runs as nobody when the test runs as root (root may write a
# read-only folder).
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
src=$RETE_SOURCE_DIR
. "$(dirname "$0")/lib.sh"
itest_init test-audit-state-dir
R=$BIN/rete

make_keys broker.mantova social.mantova cpi.mantova coord.mantova audit.region
{
	agencies_ini "Servizi Sociali"
	printf '\n[agency audit.region]\nname = Audit\nkind = auditor\nkey = ../keys/audit.region.pub\n'
} | broker_ini
coord_ini </dev/null
sed -e 's/coord.mantova/audit.region/' -e '/^events/d' "$DIR/coord.ini" >"$DIR/audit.ini"
agent_ini social.mantova cpi.mantova
start_broker
start_agents social.mantova cpi.mantova
agent=$DIR/agents/social.mantova/agent.ini
send_one() {
	sed "s/social.mantova-2026-0001/social.mantova-2026-$1/" "$src/examples/messages/referral.json" >"$DIR/m$1.json"
	"$R" send -c "$agent" "$DIR/m$1.json" --wait 20 >/dev/null 2>&1 || fail "send $1"
}
send_one 0001
send_one 0002

# as_auditor CMD...: CMD as a user the read-only folder binds (nobody, when
# root runs the test); the files it reads are made readable to it
as_auditor() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
	else
		"$@"
	fi
}
if [ "$(id -u)" = 0 ]; then
	command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to run as nobody"
	chmod 755 "$DIR" "$DIR/broker" "$DIR/keys"
	chmod 666 "$DIR"/broker/*.sock
	chmod 644 "$DIR/audit.ini" "$DIR"/keys/*.pub
	chown nobody "$DIR/keys/audit.region.key"
	touch "$DIR/access.log" # the access record every read of the log goes to
	chown nobody "$DIR/access.log"
fi

mkdir "$DIR/st"
state=$DIR/st/audit.state
[ "$(id -u)" = 0 ] && chown nobody "$DIR/st"
what="first verify"
run as_auditor "$R" audit verify -c "$DIR/audit.ini" --state "$state"
expect 0 "state saved in"
cp "$state" "$DIR/state.before"
chmod 555 "$DIR/st"

# --- holds: the log extends the saved state, the folder is read-only ------------
send_one 0003
what="holds, read-only folder"
run as_auditor "$R" audit verify -c "$DIR/audit.ini" --state "$state"
expect 2 "--state $state" "cannot" "holds" "was not saved"
lacks "state saved in" "ALARM"
# the warning comes first, before the broker is asked
first=$(head -n 1 <<<"$out")
case "$first" in
*"--state"*) ;;
*) bad "$what: the first line is not the warning about --state: $first" ;;
esac
cmp -s "$state" "$DIR/state.before" || bad "$what: the saved state changed"
what="holds, read-only folder, --json"
run as_auditor "$R" audit verify -c "$DIR/audit.ini" --state "$state" --json
expect 2 '"holds": true' '"stateSaved": false'

# --- no folder: the log is verified, nothing to save it in ------------------------
what="--state in a folder that does not exist"
run "$R" audit verify -c "$DIR/audit.ini" --state "$DIR/none/audit.state"
expect 2 "--state $DIR/none/audit.state" "holds" "was not saved"
lacks "ALARM"

# --- rollback: a fresh log where the saved one was, the folder read-only ---------
stop_all
mv "$DIR/broker/store" "$DIR/broker/store.old"
start_broker
start_agents social.mantova cpi.mantova
send_one 0004
[ "$(id -u)" = 0 ] && chmod 666 "$DIR"/broker/*.sock
what="rollback, read-only folder"
run as_auditor "$R" audit verify -c "$DIR/audit.ini" --state "$state"
expect 1 "ALARM: the broker's log is not consistent with the checkpoint saved in" "--state $state"
lacks "the broker was not asked"
cmp -s "$state" "$DIR/state.before" || bad "$what: the saved state changed"
what="rollback, read-only folder, --json"
run as_auditor "$R" audit verify -c "$DIR/audit.ini" --state "$state" --json
expect 1 '"alarm": true'

chmod 755 "$DIR/st"
[ "$FAILS" -eq 0 ] || exit 1
echo "test_audit_state_dir: all passed"
