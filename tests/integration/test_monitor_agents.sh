#!/bin/bash
# test_monitor_agents.sh — rete monitor and rete report over a network of
# real processes: rete-broker, one rete-agent per agency, messages queued
# with `rete send` from the example files (examples/messages/: a referral
# social.mantova -> cpi.mantova carrying Maria Rossi's name, fiscal code and
# contacts in its private part, then accepted and in progress).
#
# It shows: the monitor (text and JSON) and the report (CSV from the broker
# and from the store folder read beside it) count exactly that referral,
# received, accepted, in progress; and none of their outputs holds the
# person's data. Waits poll with deadlines (no sleep as synchronisation);
# every process started is stopped, the folder removed.
set -u

SRC=${RETE_SOURCE_DIR:?set RETE_SOURCE_DIR to the source folder}
. "$(dirname "$0")/lib.sh"
itest_init monagents

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
{
	printf 'checkpoint_interval = 1s\nheartbeat = 1s\n'
	agencies_ini "Servizi sociali"
} | broker_ini
agent_ini social.mantova cpi.mantova
echo "time_zone = Europe/Rome" | coord_ini

start_broker 15
start_agents social.mantova cpi.mantova

M=$SRC/examples/messages
"$BIN/rete" send -c "$DIR/agents/social.mantova/agent.ini" "$M/referral.json" --wait 30 \
	>"$DIR/send1.out" 2>&1 || fail "the referral was not accepted: $(cat "$DIR/send1.out")"
# the job centre's agent takes it (its inbox file), then answers
inbox_has_file() { ls "$DIR/agents/cpi.mantova/spool/inbox/"*.json >/dev/null 2>&1; }
wait_for 20 inbox_has_file || fail "the referral never reached cpi.mantova's inbox"
for u in update-accepted update-in-progress; do
	"$BIN/rete" send -c "$DIR/agents/cpi.mantova/agent.ini" "$M/$u.json" --wait 30 \
		>"$DIR/$u.out" 2>&1 || fail "$u was not accepted: $(cat "$DIR/$u.out")"
done

# the monitor: one referral, in progress, social -> cpi
row_ok() {
	"$BIN/rete" monitor -c "$DIR/coord.ini" --once >"$DIR/mon.txt" 2>&1 || return 1
	# req recv acc prog hold done rej canc fail total
	grep -Eq '^social\.mantova -> cpi\.mantova +employment-orientation +0 +0 +0 +1 +0 +0 +0 +0 +0 +1$' \
		"$DIR/mon.txt"
}
wait_for 20 row_ok || fail "monitor --once: $(cat "$DIR/mon.txt")"
grep -q '(no overdue referral)' "$DIR/mon.txt" || fail "an overdue referral where none is"
grep -Eq '^social\.mantova +connected' "$DIR/mon.txt" || fail "social.mantova not connected"
grep -Eq '^to receive +1 ' "$DIR/mon.txt" || fail "time to receive not counted once"
grep -Eq '^to accept +1 ' "$DIR/mon.txt" || fail "time to accept not counted once"

"$BIN/rete" monitor -c "$DIR/coord.ini" --json >"$DIR/mon.json" 2>&1 || fail "monitor --json"
grep -q '"in-progress": 1' "$DIR/mon.json" || fail "monitor --json: $(cat "$DIR/mon.json")"
grep -q '"overdue": \[\]' "$DIR/mon.json" || fail "monitor --json overdue: $(cat "$DIR/mon.json")"

# the report, from the broker and from the store beside it: the same rows
FROM=$(date -u -d yesterday +%F)
TO=$(date -u -d tomorrow +%F)
"$BIN/rete" report -c "$DIR/coord.ini" --from "$FROM" --to "$TO" --by agency,service --min-count 1 \
	>"$DIR/rep1.csv" 2>&1 || fail "report -c: $(cat "$DIR/rep1.csv")"
"$BIN/rete" report --store "$DIR/broker/store" --from "$FROM" --to "$TO" --by agency,service --min-count 1 \
	>"$DIR/rep2.csv" 2>&1 || fail "report --store: $(cat "$DIR/rep2.csv")"
cmp -s "$DIR/rep1.csv" "$DIR/rep2.csv" || fail "the broker's and the store's reports differ"
[ "$(wc -l <"$DIR/rep1.csv")" -eq 2 ] || fail "report: not one row: $(cat "$DIR/rep1.csv")"
# sent received accepted rejected (6 reasons) completed succ unsucc (6
# reasons) cancelled failed overdue openAtEnd, then the three medians
counts=$(tail -n 1 "$DIR/rep1.csv" | tr -d '\r' | cut -d, -f1-26)
want="social.mantova,cpi.mantova,employment-orientation,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1"
[ "$counts" = "$want" ] || fail "report row: got $counts, want $want"
tail -n 1 "$DIR/rep1.csv" | tr -d '\r' | cut -d, -f29 | grep -q '^$' ||
	fail "a median time to complete where nothing completed"

# never the person's data
for f in mon.txt mon.json rep1.csv rep2.csv; do
	for secret in "Maria Rossi" "RSSMRA85M41E897X" "555 0101" "maria.rossi" "Via Roma"; do
		grep -q "$secret" "$DIR/$f" && fail "$f holds personal data: $secret"
	done
done
# --- every status, through the agents ---------------------------------------
# Five more referrals social -> cpi, each driven by the agencies' files:
# completed successful, completed unsuccessful (client refused), rejected
# (lack of capacity), cancelled by the requester, on hold; and one
# emergency referral left unanswered past its 3 s limit (overdue).
SOC="$DIR/agents/social.mantova/agent.ini"
CPI="$DIR/agents/cpi.mantova/agent.ini"
send_as() { # INI NAME JSON
	printf '%s\n' "$3" >"$DIR/$2.json"
	"$BIN/rete" send -c "$1" "$DIR/$2.json" --wait 30 >"$DIR/$2.out" 2>&1 ||
		fail "$2 was not accepted: $(cat "$DIR/$2.out")"
}
referral() { # ID PRIORITY
	send_as "$SOC" "$1" '{"id": "'"$1"'", "operator": {"staffId": "as-1", "role": "social-worker"},
 "recipient": "cpi.mantova", "caseId": "mn-2026-0999",
 "referral": {"service": "employment-orientation", "priority": "'"$2"'",
   "reasonCode": "long-term-unemployment",
   "consent": {"basis": "consent", "givenAt": "2026-11-20T09:30:00Z"}, "ageBand": "adult"},
 "private": {"person": {"name": "Maria Rossi", "fiscalCode": "RSSMRA85M41E897X"}}}'
}
update() { # INI NAME REFERRAL RECIPIENT STATUS-AND-MORE [STATUS-TEXT]
	# the reason's sentence travels sealed (private.statusText): the log,
	# the monitor and the report keep only the code
	local private=''
	[ -n "${6:-}" ] && private=', "private": {"statusText": "'"$6"'"}'
	send_as "$1" "$2" '{"operator": {"staffId": "x-1", "role": "case-manager"},
 "recipient": "'"$4"'", "caseId": "mn-2026-0999",
 "update": {"referralId": "'"$3"'", '"$5"'}'"$private"'}'
}
for r in r-ok r-ko r-rej r-canc r-hold; do referral "$r" routine; done
referral r-late emergency
update "$CPI" ok1 r-ok social.mantova '"status": "accepted"'
update "$CPI" ok2 r-ok social.mantova '"status": "in-progress"'
update "$CPI" ok3 r-ok social.mantova '"status": "completed", "outcome": {"result": "successful"}'
update "$CPI" ko1 r-ko social.mantova '"status": "accepted"'
update "$CPI" ko2 r-ko social.mantova '"status": "in-progress"'
update "$CPI" ko3 r-ko social.mantova '"status": "completed", "outcome": {"result": "unsuccessful", "reason": "client-refused"}'
update "$CPI" rej r-rej social.mantova '"status": "rejected", "statusReason": {"code": "lack-of-capacity"}' "No counsellor free"
update "$SOC" canc r-canc cpi.mantova '"status": "cancelled", "statusReason": {"code": "no-longer-needed"}' "Found work"
update "$CPI" hold1 r-hold social.mantova '"status": "accepted"'
update "$CPI" hold2 r-hold social.mantova '"status": "in-progress"'
update "$CPI" hold3 r-hold social.mantova '"status": "on-hold", "statusReason": {"code": "awaiting-documents"}' "Waiting for documents"

# The first referral (in progress) plus these six: exact totals, r-late overdue.
totals_ok() {
	"$BIN/rete" monitor -c "$DIR/coord.ini" --json >"$DIR/mon2.json" 2>&1 || return 1
	[ "$(jq -c '.statusTotals' "$DIR/mon2.json")" = \
		'{"requested":0,"received":1,"accepted":0,"in-progress":1,"on-hold":1,"completed":2,"rejected":1,"cancelled":1,"failed":0,"total":7}' ] &&
		[ "$(jq -r '[.overdue[].referralId] | join(",")' "$DIR/mon2.json")" = r-late ]
}
wait_for 30 totals_ok || fail "monitor --json after every status: $(jq -c '.statusTotals, [.overdue[].referralId]' "$DIR/mon2.json")"

"$BIN/rete" report -c "$DIR/coord.ini" --from "$FROM" --to "$TO" --format json --min-count 1 >"$DIR/rep3.json" 2>&1 ||
	fail "report --format json: $(cat "$DIR/rep3.json")"
got=$(jq -c '.groups[0] | [.sent, .received, .accepted, .rejected, .rejectedByReason["lack-of-capacity"],
	.completed, .completedSuccessful, .completedUnsuccessful, .unsuccessfulByReason["client-refused"],
	.cancelled, .failed, .overdue, .openAtEnd]' "$DIR/rep3.json")
# sent received accepted rejected(lack) completed(succ,unsucc(client-refused)) cancelled failed overdue open
[ "$got" = "[7,7,4,1,1,2,1,1,1,1,0,1,3]" ] || fail "report after every status: got $got"
"$BIN/rete" report -c "$DIR/coord.ini" --from "$FROM" --to "$TO" --format csv --min-count 1 >"$DIR/rep3.csv" 2>&1 ||
	fail "report --format csv"
for f in mon2.json rep3.json rep3.csv; do
	for secret in "Maria Rossi" "RSSMRA85M41E897X" "No counsellor free" "Found work" "Waiting for documents"; do
		grep -q "$secret" "$DIR/$f" && fail "$f holds personal data: $secret"
	done
done
echo "ok: monitor and report over real agents"
exit 0
