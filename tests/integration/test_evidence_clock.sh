#!/bin/bash
# test_evidence_clock.sh — an evidence bundle whose own times contradict
# each other (attack report s12, 6): the broker's clock runs 2 h ahead
# (libfaketime) while its time-stamping authority (rete-test-tsa) and the
# agencies keep the right time. `rete evidence verify` still says the
# evidence holds (exit 0: every signature and proof holds; docs/auditing.md
# "The times in a bundle") but says, in English and in Italian, that the
# entry and its delivery were logged 2 h after the time stamp that covers
# them, that the TSA's time is the one to trust, and that the recipient's
# clock and the broker's differ by 2 h. Waits poll with deadlines; every
# process started is stopped, the folder removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init evidence-clock

need_faketime

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
start_tsa 'rete clock test'
{
	tsa_ini
	echo "checkpoint_interval = 1s"
	agencies_ini "Servizi sociali di Mantova"
} | broker_ini
coord_ini </dev/null
LD_PRELOAD="$FT" FAKETIME="+2h" FAKETIME_DONT_FAKE_MONOTONIC=1 \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_broker
agent_ini social.mantova cpi.mantova
start_agents social.mantova cpi.mantova

printf '%s\n' '{"id": "r-1", "operator": {"staffId": "as-1", "role": "social-worker"},
 "recipient": "cpi.mantova", "caseId": "mn-2026-0951",
 "referral": {"service": "employment-orientation", "priority": "routine", "reasonCode": "long-term-unemployment",
   "consent": {"basis": "consent", "givenAt": "2026-11-20T09:30:00Z"}, "ageBand": "adult"},
 "private": {"person": {"name": "Maria Rossi"}}}' >"$DIR/r-1.json"
"$BIN/rete" send -c "$DIR/agents/social.mantova/agent.ini" "$DIR/r-1.json" --wait 30 >"$DIR/send.out" 2>&1 ||
	fail "r-1 was not accepted: $(cat "$DIR/send.out")"
# exported once a time-stamped checkpoint covers its delivery
stamped() {
	"$BIN/rete" evidence export social.mantova r-1 --store "$DIR/broker/store" -o "$DIR/ev.json" \
		--broker-key "$DIR/keys/broker.mantova.pub" >"$DIR/export.out" 2>&1 &&
		"$BIN/rete" evidence verify "$DIR/ev.json" --broker-key "$DIR/keys/broker.mantova.pub" \
			--tsa-ca "$DIR/tsa/ca.pem" --lang en | grep -q "^timestamped by "
}
wait_for 60 stamped || fail "no time-stamped evidence of r-1: $(cat "$DIR/export.out")"

ev() { run "$BIN/rete" evidence verify "$DIR/ev.json" --broker-key "$DIR/keys/broker.mantova.pub" --tsa-ca "$DIR/tsa/ca.pem" "$@"; }
what="evidence verify --lang en"
ev --lang en
expect 0 "the evidence holds" \
	"WARNING, the broker's clock: entry #1 says it was logged at " \
	"; trust the TSA's time: the broker's clock was ahead by " \
	"WARNING, the broker's clock: the delivery (entry #" \
	"WARNING: cpi.mantova signed its acknowledgement at " "the two clocks differ by "
grep -qE "logged at [0-9: -]+UTC, (1 h 59|2 h 00) min after the time stamp" <<<"$out" ||
	bad "$what: the figures (2 h, less the time to the checkpoint): $out"
what="evidence verify --lang it"
ev --lang it
expect 0 "la prova regge" \
	"ATTENZIONE, orologio del broker: la voce #1 dice registrata alle " \
	"; fa fede l'ora della TSA: l'orologio del broker era avanti di almeno " \
	"ATTENZIONE: cpi.mantova ha firmato la conferma alle "
lacks "WARNING" "the evidence holds"

[ "$FAILS" = 0 ] || exit 1
echo "PASS test_evidence_clock"
