#!/bin/bash
# test_broker_clock.sh — a broker whose clock is set back (attack report
# s12, 3): under libfaketime its clock goes 3 days back between two
# referrals of social.mantova, so the second is logged "before" the first
# and 3 days before the createdAt its sender signed. `rete audit verify`
# still holds (exit 0: the entries are what was signed) but warns of both,
# naming the entry and the times (docs/auditing.md, "The broker's clock");
# social.mantova's agent says, at error level with the figures, that the
# two clocks differ (its own machine's first to check), once per spell,
# and again an hour later while the spell lasts (the agent's own clock
# under libfaketime moves on 61 min: no hour is waited), counting the
# messages in between; that step is no wait for its witness (no stall
# warning). A step back of a few seconds (NTP) is not reported. Waits poll
# with deadlines; every process started is stopped, the folder removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init broker-clock

need_faketime

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali di Mantova" | broker_ini
coord_ini </dev/null
start_broker_faketime
agent_ini social.mantova cpi.mantova
# social.mantova's agent under libfaketime too, on a clock of its own (the
# hourly repeat below: an hour passes for it without the test waiting one)
echo "+0" >"$DIR/agent-faketime.rc"
set_agent_clock() { echo "$1" >"$DIR/agent-faketime.rc.tmp" && mv "$DIR/agent-faketime.rc.tmp" "$DIR/agent-faketime.rc"; }
LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/agent-faketime.rc" FAKETIME_NO_CACHE=1 \
	FAKETIME_DONT_FAKE_MONOTONIC=1 \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_agents social.mantova
start_agents cpi.mantova

send() { send_referral "$1" routine "${2:-}"; } # ID [EXTRA]
verify() { run "$BIN/rete" audit verify "$DIR/broker/store" --broker-key "$DIR/keys/broker.mantova.pub" "$@"; }

# a step back of 2 s (what NTP may do) is no finding
send r-1
set_clock "-2s"
send r-2
what="verify after a 2 s step back"
verify
expect 0 "verified"
lacks "warning: the broker's clock"

# 3 days back: r-3 logged before r-2, and before its own createdAt
set_clock "-3d"
send r-3
what="verify after the clock went 3 days back"
verify
expect 0 "verified" "warning: the broker's clock went back: " \
	"warning: the broker logged 1 agency message more than 5 min before its sender wrote it"
# r-3 (entry 5) and its Delivery went back; the figures: 3 days less the
# milliseconds between the two entries
grep -qE "the first, entry 5, at 20[0-9-]+T[0-9:.]+Z, (2d23h|3d00h) before entry [0-9]+'s " <<<"$out" ||
	bad "$what: the step back's figures: $out"
grep -qE "the first, entry 5, logged at [0-9TZ:.-]+, (2d23h|3d00h) before its createdAt " <<<"$out" ||
	bad "$what: the createdAt's figures: $out"
what="verify --json after the clock went 3 days back"
verify --json
expect 0
[ "$(jq -r '.holds, .clock.loggedBack.firstIndex, .clock.loggedBeforeCreated.entries' <<<"$out" | tr '\n' ' ')" = "true 5 1 " ] ||
	bad "$what: holds / clock.loggedBack / clock.loggedBeforeCreated: $out"

# (review s12 small-eyes, 3) the agent cannot tell which of the two
# clocks is wrong, and the commonest case is its own machine's: it says the
# two differ, to check this machine's clock first, then to tell the
# broker's operator; once per spell, not once per message. r-4, still 3
# days back: not said again. r-5 with the broker's clock right again: the
# spell is over, said with the count of messages in it after the first (1,
# r-4). r-6, 3 days back again: a new spell, said again.
send r-4
set_clock "+0"
send r-5
set_clock "-3d"
send r-6
said() { grep "the broker logged r-[0-9]* at .* before this machine took it" "$DIR/social.mantova.log"; }
n=$(grep -c "the broker logged r-[0-9]* at .* before this machine took it" "$DIR/social.mantova.log")
[ "$n" = 2 ] || bad "social.mantova's agent said the clocks $n times in two spells (want 2, for r-3 and r-6): $(grep -i 'broker logged' "$DIR/social.mantova.log")"
said | grep "the broker logged r-3 at" | grep -qi "check this machine's clock first (timedatectl" ||
	bad "social.mantova's agent does not say to check its own clock first: $(grep 'the broker logged' "$DIR/social.mantova.log")"
said | grep -q "the broker logged r-6 at" ||
	bad "social.mantova's agent did not say the second spell (r-6): $(grep 'the broker logged' "$DIR/social.mantova.log")"
grep -q "the broker's clock and this machine's agree again (r-5 .* 1 more message had the difference" "$DIR/social.mantova.log" ||
	bad "social.mantova's agent did not say the spell's end with its count: $(grep -i 'clock' "$DIR/social.mantova.log")"
said | grep "the broker logged r-3 at" | grep -q "error" ||
	bad "social.mantova's agent did not say it at error level: $(grep 'the broker logged' "$DIR/social.mantova.log")"
! grep -q "the broker logged r-[1245] at" "$DIR/social.mantova.log" ||
	bad "social.mantova's agent said it of r-1 or r-2 (a 2 s step), r-4 (the same spell) or r-5 (right): $(grep 'the broker logged' "$DIR/social.mantova.log")"

# (final-read s12, 4) a case system that writes createdAt itself, in
# Italian local time with a Z (2 h ahead), both clocks right: the agent
# compares the broker's loggedAt with its own time when it took the file,
# and says nothing; verify's warning names that third cause.
set_clock "+0"
send r-7
ahead=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%S.000Z)
send r-8 "\"createdAt\": \"$ahead\","
! grep -q "the broker logged r-8 at" "$DIR/social.mantova.log" ||
	bad "social.mantova's agent said the clocks differ for r-8, whose createdAt (2 h ahead) the file gave, both clocks right: $(grep 'the broker logged r-8' "$DIR/social.mantova.log")"
what="verify with r-8's createdAt 2 h ahead"
verify
expect 0 "verified" "or the sender's createdAt is ahead"

# (session 12's closing, left: the hourly repeat had no test) a spell that
# lasts is said again an hour after it was said, with the number of
# messages that had the difference in between: r-9 opens a spell (said),
# r-10 within the hour (counted, not said), then the agent's clock moves
# on 61 min and r-11 is said again, counting r-10; r-12 right after it is
# within the new hour (not said).
set_clock "-3d"
send r-9
send r-10
said9=$(grep "the broker logged r-9 at" "$DIR/social.mantova.log")
[ -n "$said9" ] || bad "the spell of r-9 (the broker 3 days back) was not said: $(grep -i 'clock' "$DIR/social.mantova.log")"
set_agent_clock "+61m"
send r-11
send r-12
said11=$(grep "the broker logged r-11 at" "$DIR/social.mantova.log")
[ -n "$said11" ] || bad "the spell, 61 min after it was said (the agent's clock), was not said again for r-11: $(grep -iE 'clock|broker logged' "$DIR/social.mantova.log")"
grep -q "(still: 1 more message had the difference since it was said at " <<<"$said11" ||
	bad "the repeat for r-11 does not count r-10 (1 more message since it was said): $said11"
! grep -q "the broker logged r-1[02] at" "$DIR/social.mantova.log" ||
	bad "social.mantova's agent said it of r-10 or r-12 (within the hour of the line before): $(grep 'the broker logged r-1[02]' "$DIR/social.mantova.log")"
# the step is no hour's wait for the witness either (NTP steps a clock that
# was behind so): the receipts it has not yet seen on the broker's log did
# not wait past witness_patience. It looks at the wait in the loop turn
# where the agent first reads the new time, before r-11's receipt; r-12's
# came after it.
! grep -q "witness: .* has waited [0-9]* s to be shown on the broker's log" "$DIR/social.mantova.log" ||
	bad "the agent's clock stepped 61 min forward, and its witness said the broker withholds its log: $(grep 'witness: ' "$DIR/social.mantova.log")"

[ "$FAILS" = 0 ] || exit 1
echo "PASS test_broker_clock"
