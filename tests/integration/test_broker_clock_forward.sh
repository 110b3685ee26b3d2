#!/bin/bash
# test_broker_clock_forward.sh — a broker whose wall clock jumps forward
# (rev-edges s13, 2). cpi.mantova's agent is down and two urgent referrals
# wait for it; under libfaketime the broker's clock goes 6 days ahead for a
# spell, then comes back. The broker tells the jump from the monotonic
# clock: it logs an error naming it, `rete health` lists it as a problem,
# and the expiry (5d) and the overdue limit (urgent, 1wd) count without it:
# nothing is withdrawn, no OVERDUE notice is sent, and cpi's agent gets both
# once it runs. Then a clock that was behind and is put right (6 days
# forward, for good): the expiry still happens, counted in real time (a
# reload sets expiry to 8s). Waits poll with deadlines; every process
# started is stopped, the folder removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init broker-clock-forward

need_faketime

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali di Mantova" | broker_ini
coord_ini </dev/null
start_broker_faketime
agent_ini social.mantova cpi.mantova
start_agents social.mantova # cpi.mantova's agent is down (a weekend)

send() { send_referral "$1" urgent; } # ID: receipted, queued for cpi.mantova
log() { grep -E "$1" "$DIR/broker.log"; }
count() { grep -cE "$1" "$DIR/broker.log"; }

send r-1
send r-2

# the jump: 6 days ahead. A scan runs every second; wait until one has seen
# it (it says so, or, unguarded, withdraws)
set_clock "+6d"
wait_for 30 grep -qE "withdrew|clock jumped forward" "$DIR/broker.log" ||
	fail "the broker said nothing within 30 s of its clock going 6 days forward"
log "withdrew" && bad "the broker withdrew referrals queued seconds before, its clock 6 days ahead: $(log withdrew)"
log "error.*clock jumped forward by (5d23h|6d00h|6d)" >/dev/null ||
	bad "no error naming the jump: $(log clock)"
what="health with the clock 6 days ahead"
run "$BIN/rete" health -c "$DIR/coord.ini"
expect 1 "clock jumped forward"

set_clock "+0"
wait_for 30 grep -q "clock is back" "$DIR/broker.log" ||
	bad "the broker did not say its clock came back: $(log clock)"
log "withdrew|is overdue" && bad "withdrawn or flagged overdue during or after the spell: $(log 'withdrew|is overdue')"
what="health with the clock back"
run "$BIN/rete" health -c "$DIR/coord.ini"
lacks "clock jumped"

# Monday morning: cpi.mantova's agent gets both
start_agents cpi.mantova
CPI=${PIDS[-1]}
wait_for 60 inbox_has cpi.mantova 2 || bad "cpi.mantova's agent did not get r-1 and r-2: $(ls -R "$DIR/agents/cpi.mantova/spool" | head -30)"

# a clock that was behind and is put right (NTP at boot): 6 days forward
# for good. r-3 waits for cpi.mantova (its agent stopped again); a reload
# sets expiry to 8s: r-3 is withdrawn after 8 s of real time, not never
stop_pid "$CPI" "cpi.mantova's agent"
send r-3
set_clock "+6d"
wait_for 30 sh -c "[ \$(grep -c 'clock jumped forward' '$DIR/broker.log') -ge 2 ]" ||
	bad "the broker did not say the second jump: $(log clock)"
log "withdrew" && bad "withdrawn at the second jump: $(log withdrew)"
sed -i 's/^data = store$/data = store\nexpiry = 8s/' "$DIR/broker/broker.ini"
kill -HUP "$BROKER"
wait_for 60 grep -q "withdrew r-3 " "$DIR/broker.log" ||
	bad "r-3 was not withdrawn after expiry 8s with the clock put right: $(log 'withdrew|clock|reload')"
[ "$(count withdrew)" = 1 ] || bad "more withdrawn than r-3: $(log withdrew)"

[ "$FAILS" = 0 ] || exit 1
echo "PASS test_broker_clock_forward"
