#!/bin/bash
# test_broker_clock_start.sh — a broker started while its clock is already
# wrong (s14; docs/operations.md "Trusted time"). Under libfaketime:
#
# 1. Two urgent referrals wait for cpi.mantova (its agent down); the broker
#    is stopped and started again with its clock 6 days ahead (a VM restored
#    with a wrong clock). It must not withdraw them nor flag them overdue at
#    its first scans: the clock disagrees with its store's newest time, and
#    for clock_grace after the start the gap is not counted; an error and a
#    health problem name the gap. Started again with the same wrong clock,
#    it still sees the gap (the state file's time, "last seen running", is
#    not set while the clock is in doubt). The clock is put right (NTP): the
#    broker says so, nothing was withdrawn, cpi's agent gets both.
# 2. Stopped again with r-3 queued and started 6 days ahead once more: this
#    time the downtime was real. The operator confirms it (a reload with a
#    short clock_grace): r-3, past its expiry, is withdrawn then.
# 3. The log's newest entries now carry times 6 days ahead; the broker is
#    started with its clock back at the true time, 6 days behind them. It
#    logs nothing with an earlier time: r-4 is held (BUSY, the agent sends it
#    again), an error and a health problem say why and what to do; once the
#    clock passes the newest entry (set 6 days forward here: the clock put
#    right, not a jump) r-4 is logged, and the log's times never went back.
#
# Waits poll with deadlines; every process started is stopped, the folder
# removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init broker-clock-start

need_faketime

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali di Mantova" | broker_ini
coord_ini </dev/null
start_broker_faketime
agent_ini social.mantova cpi.mantova
start_agents social.mantova # cpi.mantova's agent is down
SOCIAL=${PIDS[-1]}

send() { send_referral "$1" urgent; } # ID: receipted, queued for cpi.mantova
log() { grep -E "$1" "$DIR/broker.log"; }
health() {
	what="health $1"
	run "$BIN/rete" health -c "$DIR/coord.ini"
}

# restart_broker OFFSET: stop the broker, start it again on the same store
# with its clock at OFFSET (DIR/broker.log: the new run's only)
restart_broker() {
	stop_pid "$BROKER" "the broker"
	echo "$1" >"$DIR/faketime.rc"
	: >"$DIR/broker.log"
	LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/faketime.rc" FAKETIME_NO_CACHE=1 \
		FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BIN/rete-broker" -c "$DIR/broker/broker.ini" >"$DIR/broker.log" 2>&1 &
	PIDS+=($!)
	BROKER=$!
	wait_for 30 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the broker did not start again"
}

# --- 1. started 6 days ahead: nothing withdrawn -----------------------------------
send r-1
send r-2
restart_broker "+6d"
# a scan runs every second; wait until one has acted on the clock (it says
# so, or, unguarded, withdraws)
wait_for 30 grep -qE "withdrew|is overdue|wait for clock_grace" "$DIR/broker.log" ||
	fail "the broker said nothing within 30 s of starting with its clock 6 days ahead"
log "withdrew|is overdue" &&
	bad "the broker withdrew (or flagged overdue) referrals queued before its stop, started with its clock 6 days ahead: $(log 'withdrew|is overdue')"
log "error.*clock is (5d23h|6d00h) ahead of the newest time.* 2 withdrawals and 2 overdue notices wait" >/dev/null ||
	bad "no error naming the clock's gap at the start: $(log clock)"
health "with the clock 6 days ahead since the start"
expect 1 "ahead of the newest time" "clock_grace"

# restarted again with the same wrong clock (a restart loop, or an operator
# trying a restart): the first run's start and checkpoints wrote the state
# file with the wrong clock, yet the gap is still seen
restart_broker "+6d"
wait_for 30 grep -qE "withdrew|is overdue|wait for clock_grace" "$DIR/broker.log" ||
	fail "the broker said nothing within 30 s of starting again 6 days ahead"
log "withdrew|is overdue" &&
	bad "withdrawn (or flagged overdue) at a second start with the clock 6 days ahead: $(log 'withdrew|is overdue')"

set_clock "+0" # NTP puts it right
wait_for 30 grep -q "clock is back" "$DIR/broker.log" ||
	bad "the broker did not say its clock came back: $(log clock)"
log "withdrew|is overdue" && bad "withdrawn or flagged overdue: $(log 'withdrew|is overdue')"
health "with the clock put right"
lacks "ahead of the newest time"
start_agents cpi.mantova
CPI=${PIDS[-1]}
wait_for 60 inbox_has cpi.mantova 2 || bad "cpi.mantova's agent did not get r-1 and r-2: $(ls -R "$DIR/agents/cpi.mantova/spool" | head -30)"

# --- 2. a real downtime of 6 days: the operator confirms, r-3 is withdrawn ------
stop_pid "$CPI" "cpi.mantova's agent"
send r-3
restart_broker "+6d"
wait_for 30 grep -qE "withdrew|wait for clock_grace" "$DIR/broker.log" ||
	fail "the broker said nothing within 30 s of its second start"
log "withdrew" && bad "withdrawn at once at the second start: $(log withdrew)"
sed -i 's/^data = store$/data = store\nclock_grace = 1s/' "$DIR/broker/broker.ini"
kill -HUP "$BROKER"
wait_for 60 grep -q "withdrew r-3 " "$DIR/broker.log" ||
	bad "r-3 was not withdrawn once the downtime was confirmed (clock_grace 1s): $(log 'withdrew|clock|reload')"
health "once the start's gap was counted"
lacks "ahead of the newest time"

# --- 3. started 6 days behind the log's newest entry: r-4 is held ---------------
sed -i '/^clock_grace = 1s$/d' "$DIR/broker/broker.ini" # the default, 30m
restart_broker "+0"
wait_for 30 grep -q "behind the newest entry" "$DIR/broker.log" ||
	bad "no word of the clock 6 days behind the log's newest entry: $(log clock)"
health "with the clock behind the log"
expect 1 "behind the newest entry" "timedatectl"
printf '%s\n' '{"id": "r-4", "operator": {"staffId": "as-1", "role": "social-worker"},
 "recipient": "cpi.mantova", "caseId": "mn-2026-0901",
 "referral": {"service": "employment-orientation", "priority": "urgent", "reasonCode": "long-term-unemployment",
   "consent": {"basis": "consent", "givenAt": "2026-11-20T09:30:00Z"}, "ageBand": "adult"},
 "private": {"person": {"name": "Maria Rossi"}}}' >"$DIR/agents/social.mantova/spool/outbox/r-4.json.tmp"
mv "$DIR/agents/social.mantova/spool/outbox/r-4.json.tmp" "$DIR/agents/social.mantova/spool/outbox/r-4.json"
sent() { [ -n "$(find "$DIR/agents/social.mantova/spool/sent" -name 'r-4*')" ]; }
wait_for 60 sh -c "grep -q 'submission r-4 of social.mantova held' '$DIR/broker.log' || [ -n \"\$(find '$DIR/agents/social.mantova/spool/sent' -name 'r-4*')\" ]" ||
	bad "r-4 was neither logged nor held within 60 s"
sent && bad "the broker logged r-4 with its clock 6 days behind the log's newest entry: $(ls "$DIR/agents/social.mantova/spool/sent")"
set_clock "+6d"
wait_for 30 grep -q "clock has passed the newest entry" "$DIR/broker.log" ||
	bad "the broker did not say its clock passed the log's newest entry: $(log clock)"
wait_for 60 sent || bad "r-4 was not logged once the clock passed the log's newest entry: $(log 'r-4|clock')"
health "with the clock past the log's newest entry"
lacks "behind the newest entry" "jumped forward"

what="verify"
run "$BIN/rete" audit verify "$DIR/broker/store" --broker-key "$DIR/keys/broker.mantova.pub"
expect 0 "verified"
lacks "warning: the broker's clock went back"
kill "$SOCIAL"

[ "$FAILS" = 0 ] || exit 1
echo "PASS test_broker_clock_start"
