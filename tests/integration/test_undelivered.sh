#!/bin/bash
# test_undelivered.sh — a message the broker receipted and never delivers is
# noticed on the sender's side (review s17 rev-edges, finding 2): a real
# broker, the two agents of social.mantova and cpi.mantova, the recipient's
# agent stopped, so the referral stays receipted and undelivered (for the
# sender that is what a withholding broker looks like).
#
# The broker keeps the real clock, so its own expiry (5d) never runs; the
# sender's agent and its `rete status` run under libfaketime with their own
# offset (DIR/sender.rc): at +0 the status gives the referral's age and no
# warning; at +6d (past the directory's 5d) the status says it in a sentence
# (text) and "overdue": true (--json), the agent's log says it once (a
# restart at +6d does not say it again), and /metrics gives the age of the
# oldest undelivered message and the count past the expiry. Nothing shown
# carries the person's data. Waits poll with deadlines.
#
# Review rev-held s17: at +5d 1m (past the expiry, within the 5 min the
# clocks may differ) nothing is said yet (4); the agent judges nothing
# before it has been connected for six heartbeats: a restart at +6d with the
# delivery receipts waiting at the broker says no NOT DELIVERED (2); the
# sentences say what the agent cannot know (1).
set -u

. "$(dirname "$0")/lib.sh"
itest_init undelivered
need_faketime

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali" | broker_ini
agent_ini social.mantova cpi.mantova
echo "metrics = 127.0.0.1:0" >>"$DIR/agents/social.mantova/agent.ini"
# the watch settles and looks every six heartbeats: 6 s here, not a minute
echo "heartbeat = 1s" >>"$DIR/agents/social.mantova/agent.ini"
coord_ini </dev/null

start_broker 20
start_agents cpi.mantova
CPI=${PIDS[-1]}
stop_pid "$CPI" "cpi.mantova's agent"

# the sender's agent and its status, on the sender's clock
echo "+0" >"$DIR/sender.rc"
SENDER_ENV=(LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/sender.rc" FAKETIME_NO_CACHE=1
	FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
INI=$DIR/agents/social.mantova/agent.ini
# start_sender LOG: the sender's agent, its output in LOG (emptied first),
# its pid in SENDER, its metrics address in URL.
start_sender() {
	: >"$1"
	env "${SENDER_ENV[@]}" "$BIN/rete-agent" -c "$INI" >"$1" 2>&1 &
	SENDER=$!
	PIDS+=($SENDER)
	wait_for 30 grep -q 'metrics on http://127.0.0.1:[0-9]*/metrics' "$1" ||
		fail "the sender's agent did not start: $(cat "$1")"
	URL=$(grep -o 'http://127.0.0.1:[0-9]*/metrics' "$1" | head -n 1)
}
start_sender "$DIR/sender1.log"
send_referral held-1
status() { run env "${SENDER_ENV[@]}" "$BIN/rete" status -c "$INI" "$@"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$out" 2>&1; }
# metric NAME: its value in the agent's /metrics now
metric() { curl -s "$URL" | awk -v n="$1" '$1 == n {print $2}'; }

what="status at +0"
status held-1
expect 0 "held-1" "not delivered yet: receipted" "ago (the directory's expiry: 5d)"
lacks "NOT DELIVERED" "Maria Rossi"
what="status --json at +0"
status --json
expect 0
[ "$(jget 'd["directoryExpiryMs"]')" = 432000000 ] || bad "$what: directoryExpiryMs: $out"
[ "$(jget 'd["referrals"][0]["undelivered"][0]["overdue"]')" = False ] ||
	bad "$what: undelivered[0].overdue: $out"
[ "$(jget 'd["referrals"][0]["undelivered"][0]["messageId"]')" = held-1 ] ||
	bad "$what: undelivered[0].messageId: $out"
lacks "Maria Rossi"

# set_clock OFFSET: the sender's clock from now on
set_clock() { echo "$1" >"$DIR/sender.rc.tmp" && mv "$DIR/sender.rc.tmp" "$DIR/sender.rc"; }

# one minute past the expiry: within the tolerance between two clocks
set_clock "+7201m"
what="status at +5d 1m"
status held-1
expect 0 "not delivered yet: receipted 5d" "ago (the directory's expiry: 5d)"
lacks "NOT DELIVERED"

# six days on, on the sender's side only: past the directory's expiry
set_clock "+6d"
said() { grep -c 'held message held-1 (referral held-1) NOT DELIVERED after 6d' "$@" | awk -F: '{s += $NF} END {print s}'; }
# the agent looks every six heartbeats (6 s here)
wait_for 150 grep -q 'held message held-1 (referral held-1) NOT DELIVERED after 6d' "$DIR/sender1.log" ||
	fail "the agent's log never said held-1 is past the expiry: $(tail -n 20 "$DIR/sender1.log")"
grep -q "NOT DELIVERED after 6d: the broker receipted it at log index 1 .*expiry is 5d (judged after 5m more.*stopped for longer than the expiry and that receipt expired at the broker.*the evidence: its receipt, sent/held-1.json.receipt.json" \
	"$DIR/sender1.log" || bad "the agent's line does not name the expiry, the margin, what it cannot know and the receipt: $(grep 'NOT DELIVERED' "$DIR/sender1.log")"
over() { [ "$(metric rete_agent_undelivered_overdue_messages)" = 1 ]; }
wait_for 30 over || fail "rete_agent_undelivered_overdue_messages is not 1: $(curl -s "$URL")"
age=$(metric rete_agent_undelivered_oldest_age_seconds)
awk -v a="${age:-0}" 'BEGIN {exit !(a >= 6 * 86400 && a < 7 * 86400)}' ||
	bad "rete_agent_undelivered_oldest_age_seconds is '$age', not six days"

what="status at +6d"
status held-1
expect 0 "NOT DELIVERED after 6d" "neither its delivery receipt nor a notice that it was withdrawn has reached this agent" \
	"stopped for longer than the expiry" "the directory's expiry is 5d" "rete health" "the broker's operator" \
	"the evidence: its receipt, sent/held-1.json.receipt.json"
lacks "Maria Rossi"
what="status --json at +6d"
status --json
expect 0
[ "$(jget 'd["referrals"][0]["undelivered"][0]["overdue"]')" = True ] ||
	bad "$what: undelivered[0].overdue: $out"
[ "$(jget 'd["referrals"][0]["undelivered"][0]["receipt"]')" = sent/held-1.json.receipt.json ] ||
	bad "$what: undelivered[0].receipt: $out"
age=$(jget 'd["referrals"][0]["undelivered"][0]["ageSeconds"]')
awk -v a="${age:-0}" 'BEGIN {exit !(a >= 6 * 86400 && a < 7 * 86400)}' ||
	bad "$what: ageSeconds '$age', not six days: $out"
lacks "Maria Rossi"

# once per message: a restart (still at +6d) scans again (the metric says
# it did) and does not say it again
stop_pid "$SENDER" "the sender's agent"
start_sender "$DIR/sender2.log"
wait_for 150 over || fail "after the restart, rete_agent_undelivered_overdue_messages is not 1"
n=$(said "$DIR/sender1.log" "$DIR/sender2.log")
[ "$n" = 1 ] || bad "the log said held-1 past its expiry $n times, not once"

# a restart with the delivery receipts waiting at the broker (rev-held 2):
# held-2 is sent at +0 (not past anything), the sender's agent stops, the
# recipient's agent collects held-1 and held-2 (their delivery receipts are
# queued for the sender), and the sender's agent starts at +6d
set_clock "+0"
send_referral held-2
stop_pid "$SENDER" "the sender's agent"
start_agents cpi.mantova
CPI=${PIDS[-1]}
wait_for 30 inbox_has cpi.mantova 2 || fail "cpi.mantova did not collect held-1 and held-2"
set_clock "+6d"
start_sender "$DIR/sender3.log"
receipts() { [ "$(grep -c 'delivery from broker.mantova) written to inbox' "$DIR/sender3.log")" -ge 2 ]; }
wait_for 30 receipts || fail "the sender's agent did not get the two delivery receipts: $(tail -n 20 "$DIR/sender3.log")"
if grep -q "NOT DELIVERED" "$DIR/sender3.log"; then
	bad "after a restart with its delivery receipts waiting, the agent said: $(grep 'NOT DELIVERED' "$DIR/sender3.log")"
fi
wait_for 150 grep -q "held messages looked at (then every 6 s): 0 held, 0 past" "$DIR/sender3.log" ||
	fail "the sender's agent did not look at its held messages: $(tail -n 20 "$DIR/sender3.log")"
if grep -q "NOT DELIVERED" "$DIR/sender3.log"; then
	bad "after its first look the agent said: $(grep 'NOT DELIVERED' "$DIR/sender3.log")"
fi
[ "$(metric rete_agent_undelivered_overdue_messages)" = 0 ] ||
	bad "rete_agent_undelivered_overdue_messages is not 0 once both were delivered: $(curl -s "$URL")"

# a delivery receipt the broker let expire while the sender's agent was
# stopped (rev-held 1): the broker, restarted with expiry = 10s, delivers
# held-3 while the sender's agent is stopped and lets its delivery receipt
# expire; `rete status` gives the broker's word beside what did not arrive
stop_pid "$CPI" "cpi.mantova's agent"
set_clock "+0"
stop_pid "${PIDS[0]}" "the broker"
sed -i 's/^data = store$/data = store\nexpiry = 10s/' "$DIR/broker/broker.ini"
"$BIN/rete-broker" -c "$DIR/broker/broker.ini" >>"$DIR/broker.log" 2>&1 &
PIDS+=($!)
wait_for 20 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the broker did not answer again"
send_referral held-3
stop_pid "$SENDER" "the sender's agent"
start_agents cpi.mantova
wait_for 30 inbox_has cpi.mantova 3 || fail "cpi.mantova did not collect held-3"
# nothing queued for the sender any more: its delivery receipt expired
drained() { "$BIN/rete" health -c "$DIR/coord.ini" | awk '$1 == "social.mantova" && $NF == "-" {f = 1} END {exit !f}'; }
wait_for 60 drained || fail "held-3's delivery receipt did not expire at the broker: $("$BIN/rete" health -c "$DIR/coord.ini" 2>&1)"
set_clock "+6d"
start_sender "$DIR/sender4.log"
what="status at +6d, held-3's delivery receipt expired at the broker"
status held-3
expect 0 "broker: received" "NO DELIVERY RECEIPT after 6d" "no delivery receipt reached this agent; the broker says received" \
	"may have expired at the broker while this agent was stopped"
lacks "NOT DELIVERED" "neither delivered it" "Maria Rossi"

if grep -q "Maria Rossi" "$DIR"/sender[1234].log; then
	bad "the agent's log carries the person's name"
fi

[ "$FAILS" = 0 ] || exit 1
echo "PASS"
