#!/bin/bash
# test_broker_removed_party.sh — a party removed from broker.ini while
# messages wait for it (rev-edges s13, 3). Two referrals wait for
# cpi.mantova (its agent down); its section is deleted and the broker
# restarted. `--check-config` says it in a note (the count, the oldest,
# "withdrawn after expiry 5d unless the section is put back"), the start
# and a reload log it as a warning, `rete health` lists it as a problem.
# Put back (SIGHUP), the problem is gone and cpi.mantova's agent gets both
# (docs/operations.md, "Removing a party"). Waits poll with deadlines; every
# process started is stopped, the folder removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init broker-removed-party

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali di Mantova" | broker_ini
coord_ini </dev/null
bini=$DIR/broker/broker.ini
start_broker
agent_ini social.mantova cpi.mantova
start_agents social.mantova

send() { send_referral "$1"; } # ID: receipted, queued for cpi.mantova
send r-1
send r-2

# cpi.mantova's section deleted (and the routes to and from job centres)
cp "$bini" "$DIR/broker.ini.orig"
sed -i -e '/^\[agency cpi.mantova\]/,/^$/d' -e 's/^routes = .*/routes = social-services>social-services/' "$bini"
grep -q "cpi.mantova" "$bini" && fail "cpi.mantova's section is still in $bini"
stop_all

what="--check-config without cpi.mantova's section"
run "$BIN/rete-broker" -c "$bini" --check-config
expect 0 "fine" "cpi.mantova: 2 messages wait in its queue (the oldest logged at 20" \
	"no [agency cpi.mantova] section: they are withdrawn after expiry 5d unless the section is put back"

"$BIN/rete-broker" -c "$bini" >"$DIR/broker.log" 2>&1 &
PIDS+=($!)
BROKER=$!
wait_for 20 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the broker did not answer"
grep -q "warning: cpi.mantova: 2 messages wait in its queue .* unless the section is put back" "$DIR/broker.log" ||
	bad "the start did not warn of cpi.mantova's queue: $(grep -E 'warning|started' "$DIR/broker.log")"

what="health without cpi.mantova's section"
run "$BIN/rete" health -c "$DIR/coord.ini"
expect 1 "cpi.mantova is not in the configuration, yet 2 messages wait in its queue" \
	"they are withdrawn after expiry 5d unless its [agency cpi.mantova] section is put back"

# a reload says it again
kill -HUP "$BROKER"
wait_for 20 sh -c "[ \$(grep -c 'cpi.mantova: 2 messages wait in its queue' '$DIR/broker.log') -ge 2 ]" ||
	bad "the reload did not warn of cpi.mantova's queue: $(grep -E 'warning|reload' "$DIR/broker.log")"

# put back: no problem, and both are delivered
cp "$DIR/broker.ini.orig" "$bini"
n=$(grep -c "reload: .* parties" "$DIR/broker.log")
kill -HUP "$BROKER"
wait_for 20 sh -c "[ \$(grep -c 'reload: .* parties' '$DIR/broker.log') -gt $n ]" || bad "the second reload was not done"
what="health with cpi.mantova's section back"
run "$BIN/rete" health -c "$DIR/coord.ini"
lacks "not in the configuration"
start_agents cpi.mantova
inbox() { [ "$(find "$DIR/agents/cpi.mantova/spool/inbox" -name '*.json' | wc -l)" -ge 2 ]; }
wait_for 60 inbox || bad "cpi.mantova's agent did not get r-1 and r-2 after the section was put back"

[ "$FAILS" = 0 ] || exit 1
echo "PASS test_broker_removed_party"
