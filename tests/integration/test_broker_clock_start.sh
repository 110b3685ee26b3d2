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
#    r-3b, queued for cpi.mantova before, is not delivered during the hold
#    (its ACK could not be logged), and is when the hold ends.
# 4. r-5 queued, the store backed up, swapped for the copy and started with
#    --restore, the clock 6 days ahead: the check runs before the restore's
#    epoch entry, so r-5 is not withdrawn and the gap is named.
# 5. r-6 is logged during that clock_grace (with the wrong clock); started
#    again as wrong, the broker counts the gap from the state file's time
#    (last seen while the clock was trusted), not from r-6: nothing withdrawn.
# 6. A TSA whose clock is 2 hours ahead: its token brings an error and a
#    health problem naming it; the next start warns of the token's time and
#    holds nothing for it (r-8 is accepted).
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
# r-3b waits for cpi.mantova (its agent down), logged with the clock 6 days
# ahead; during the hold nothing is delivered (an ACK could not be logged:
# before, r-3b went to cpi, every ACK was refused and the entries were set
# aside as "read without acknowledging"); when the hold ends it is.
send_referral r-3b
sed -i '/^clock_grace = 1s$/d' "$DIR/broker/broker.ini" # the default, 30m
restart_broker "+0"
wait_for 30 grep -q "behind the newest entry" "$DIR/broker.log" ||
	bad "no word of the clock 6 days behind the log's newest entry: $(log clock)"
start_agents cpi.mantova
CPI=${PIDS[-1]}
has_r3b() { grep -rlq '"r-3b"' "$DIR/agents/cpi.mantova/spool/inbox" 2>/dev/null; }
wait_for 30 grep -q "hello from cpi.mantova" "$DIR/broker.log" ||
	bad "cpi.mantova's agent did not say HELLO to the held broker: $(log 'hello|clock')"
wait_for 10 has_r3b && bad "r-3b was delivered to cpi.mantova while the broker held its log (its ACK could not be logged): $(log 'ACK|aside|r-3b')"
log "without acknowledging" && bad "the broker set aside what cpi.mantova could not acknowledge during the hold: $(log 'aside|acknowledging')"
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
wait_for 60 has_r3b || bad "r-3b was not delivered to cpi.mantova once the hold ended: $(log 'r-3b|clock')"
stop_pid "$CPI" "cpi.mantova's agent" # down again, as the steps below expect
health "with the clock past the log's newest entry"
lacks "behind the newest entry" "jumped forward"

what="verify"
run "$BIN/rete" audit verify "$DIR/broker/store" --broker-key "$DIR/keys/broker.mantova.pub"
expect 0 "verified"
lacks "warning: the broker's clock went back"

# --- 4. a declared restore (--restore) with the clock 6 days ahead --------------
# (an RTC wrong after a board swap; docs/operations.md "Restoring a backup":
# the store swapped for a backup, store.state left where it is). The check
# runs before the restore's epoch entry is logged, which would otherwise be
# the newest time and hide the gap.
send r-5
what="store backup"
run "$BIN/rete" store backup "$DIR/broker/store" "$DIR/backup"
expect 0
stop_pid "$BROKER" "the broker"
mv "$DIR/broker/store" "$DIR/broker/store.broken"
cp -a "$DIR/backup" "$DIR/broker/store"
restart_broker "+12d" --restore
wait_for 30 grep -qE "withdrew|is overdue|wait for clock_grace" "$DIR/broker.log" ||
	fail "the broker said nothing within 30 s of its restore with the clock 6 days ahead"
log "withdrew|is overdue" &&
	bad "--restore with the clock 6 days ahead withdrew (or flagged overdue) r-4 or r-5: $(log 'withdrew|is overdue')"
# (r-4 reached cpi.mantova after step 3's hold: it waits as overdue, not for
# withdrawal)
log "error.*clock is (5d23h|6d00h) ahead of the newest time.* [12] withdrawals? and [2-4] overdue notices wait" >/dev/null ||
	bad "no error naming the clock's gap at the restore: $(log 'clock|epoch')"
grep -q "logged epoch" "$DIR/broker.log" || bad "the restore logged no epoch entry: $(log epoch)"

# --- 5. r-6 logged during clock_grace, then a second start as wrong -------------
# r-6 is accepted (the ahead case holds nothing back) and logged with the
# wrong clock; the log's newest entry is then 6 days after the state file's
# time ("last seen while the clock was trusted"): the gap is counted from
# that, not from r-6
send r-6
restart_broker "+12d"
wait_for 30 grep -qE "withdrew|is overdue|wait for clock_grace" "$DIR/broker.log" ||
	fail "the broker said nothing within 30 s of starting again 6 days ahead after r-6"
log "withdrew|is overdue" &&
	bad "a second start 6 days ahead, r-6 logged during clock_grace, withdrew (or flagged overdue): $(log 'withdrew|is overdue')"
log "error.*clock is (5d23h|6d00h) ahead of the newest time.* [12] withdrawals? and [2-4] overdue notices wait" >/dev/null ||
	bad "no error naming the clock's gap at the second start: $(log 'clock')"

# --- 6. a TSA whose clock is 2 hours ahead of the broker's ----------------------
# (misconfigured, or local time written as UTC). A token that arrives so far
# from the broker's clock: an error and a health problem naming the TSA. At
# the next start the newest token is 2 hours ahead of the clock: a warning,
# and nothing held for it (the broker's clock is the right one here).
"$BIN/rete-test-tsa" --make-ca "$DIR/tsa" --name "TSA di prova" 2>"$DIR/openssl.log" ||
	fail "rete-test-tsa --make-ca failed: $(cat "$DIR/openssl.log")"
# (ASAN_OPTIONS: libfaketime preloaded ahead of the sanitizers' runtime, as
# in start_broker_faketime)
LD_PRELOAD="$FT" FAKETIME="+290h" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$BIN/rete-test-tsa" --cert "$DIR/tsa/tsa.pem" \
	--key "$DIR/tsa/tsa.key" --dir "$DIR/tsa/state" >"$DIR/tsa/port" 2>"$DIR/tsa.log" &
PIDS+=($!)
wait_for 20 grep -q '^port ' "$DIR/tsa/port" || fail "the test TSA did not start"
TSA_PORT=$(awk '/^port /{print $2; exit}' "$DIR/tsa/port")
tsa_ini >"$DIR/tsa.ini"
sed -i "/^data = store$/r $DIR/tsa.ini" "$DIR/broker/broker.ini"
restart_broker "+12d" # 12 days + 2 hours: the TSA's clock
send r-7
wait_for 60 grep -q "time stamps: the TSA at .* ahead of the broker's clock" "$DIR/broker.log" ||
	bad "no error when a token came dated 2 hours ahead of the broker's clock: $(log 'stamp|TSA')"
health "with the TSA's clock 2 hours ahead"
expect 1 "the TSA at http://127.0.0.1:$TSA_PORT/tsa dated checkpoint" "ahead of the broker's clock"
restart_broker "+12d"
wait_for 30 grep -q "time-stamp token .* ahead of the broker's clock" "$DIR/broker.log" ||
	bad "no word, at the start, of the newest token 2 hours ahead of the clock: $(log 'token|clock')"
log "behind the newest" && bad "held at the start for a token's time alone: $(log 'behind the newest')"
send r-8 # fails the test if r-8 is held (BUSY)
kill "$SOCIAL"

[ "$FAILS" = 0 ] || exit 1
echo "PASS test_broker_clock_start"
