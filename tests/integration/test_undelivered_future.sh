#!/bin/bash
# test_undelivered_future.sh — a broker whose receipts are dated ahead
# (review rev-held s17, finding 3): its clock 30 days ahead is what a broker
# that post-dates its receipts looks like to the sender. The recipient's
# agent is never started, so the referral stays receipted and undelivered.
# The sender's agent says the receipt's loggedAt is ahead once, records its
# own time of receipt ("receivedAt") beside it, and `rete status` counts the
# age from that time and says the receipt is dated in the future, not
# "receipted 0s ago". Waits poll with deadlines.
set -u

. "$(dirname "$0")/lib.sh"
itest_init undelivered_future
need_faketime

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali" | broker_ini
agent_ini social.mantova cpi.mantova
coord_ini </dev/null
INI=$DIR/agents/social.mantova/agent.ini

start_broker_faketime +30d
start_agents social.mantova
send_referral f-1
send_referral f-2

# said once, at the first receipt dated ahead
wait_for 30 grep -q "the broker logged f-1 at .* after this machine received its receipt" \
	"$DIR/social.mantova.log" ||
	fail "the agent did not say f-1's receipt is dated ahead: $(tail -n 10 "$DIR/social.mantova.log")"
n=$(grep -c "after this machine received its receipt" "$DIR/social.mantova.log")
[ "$n" = 1 ] || bad "the receipts dated ahead were said $n times, not once"

what="receipt of f-1"
run cat "$DIR/agents/social.mantova/spool/sent/f-1.json.receipt.json"
expect 0 '"receivedAt"' '"loggedAt"'

what="status f-1"
run "$BIN/rete" status -c "$INI" f-1
expect 0 "not delivered yet, and its receipt is dated 29d" "in the future" \
	"post-dates its receipts" "sent/f-1.json.receipt.json"
lacks "receipted 0s ago" "Maria Rossi"
what="status --json f-1"
run "$BIN/rete" status -c "$INI" --json f-1
expect 0 '"receiptAheadSeconds"'
ahead=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["referrals"][0]["undelivered"][0]["receiptAheadSeconds"])' <<<"$out" 2>&1)
awk -v a="${ahead:-0}" 'BEGIN {exit !(a > 29 * 86400 && a <= 30 * 86400)}' ||
	bad "$what: receiptAheadSeconds '$ahead', not about 30 days: $out"
# the age counts from this machine's time of receipt: receiptedAt is this
# machine's day, not the broker's 30 days ahead
days=$(python3 -c 'import json,sys,datetime
d=json.load(sys.stdin)
at=datetime.datetime.strptime(d["referrals"][0]["undelivered"][0]["receiptedAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
print(abs(at - datetime.datetime.utcnow()).days)' <<<"$out" 2>&1)
[ "$days" = 0 ] || bad "$what: receiptedAt is $days days from this machine's clock: $out"

[ "$FAILS" = 0 ] || exit 1
echo "PASS"
