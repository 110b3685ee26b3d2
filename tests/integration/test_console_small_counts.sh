#!/bin/bash
# test_console_small_counts.sh — the steering group's pages publish every
# count as 0, "< 3" (1 or 2) or rounded to 5 on its own, totals included
# (GDPR art. 25, 89; docs/coordinator.md), so that no hidden count can be
# worked out from the figures beside it. One referral of social.mantova to
# cpi.mantova for employment-orientation and three for training-voucher
# (cpi.mantova's agent not running: all stay sent): sara, of the steering
# group, reads the overview, the report (JSON, CSV, XLSX) and Andamento;
# anna, the coordinator, reads every number. R3's reproductions: the "< 3"
# beside the other row and the exact total (1: the total 4 minus the 3);
# then cpi.mantova takes them and completes the four training-voucher ones
# (and a fourth): the hidden employment-orientation row from the
# training-voucher row's statuses and the grand total, and statusTotals'
# received (1) from the times' counts (to receive 5, to accept 4). Each is
# now a range of more than one value. With [report] min_count = 5 the four
# completed and the one received read "< 5".
# Session 11: a row whose own total is below the threshold is not listed by
# name for sara (a row listed said "one referral at least"): it is in one
# "others" row ("altri"), in the overview, the report (JSON, CSV, XLSX, by
# status too) and the rendered pages; the agencies' queue lengths read
# "< 3" or rounded, and sara's Salute carries no log size (nor the
# checkpoints' sizes, which are the log's size at a checkpoint).
# Waits poll with deadlines; every process started is stopped, the folder
# removed.
set -u

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_browser.sh"
browser_need
itest_init console-small

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi sociali di Mantova" | broker_ini
coord_ini <<EOT

[console]
users = console-users
steering_group = sara
tls_cert = console.crt
tls_key = console.key
EOT
console_cert
for u in anna sara; do
	printf 'una password lunga\n' | "$BIN/rete" console passwd $u -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
		fail "passwd $u: $(cat "$DIR/p.out")"
done
# the broker's wall clock under libfaketime when there is one (scripts/
# setup installs it): moved 2 h on below, cpi.mantova's queue is then an
# hour old, a problem on Salute
FT=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1)
if [ -n "$FT" ]; then
	echo "+0" >"$DIR/faketime.rc"
	# a sanitizer build: AddressSanitizer wants its runtime first among
	# the libraries, and the preloaded one comes before it
	LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/faketime.rc" FAKETIME_NO_CACHE=1 \
		FAKETIME_DONT_FAKE_MONOTONIC=1 \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_broker
else
	start_broker
fi
set_clock() { echo "$1" >"$DIR/faketime.rc.tmp" && mv "$DIR/faketime.rc.tmp" "$DIR/faketime.rc"; }
agent_ini social.mantova
start_agents social.mantova
send() { # ID CASE SERVICE
	printf '%s\n' "{\"id\": \"$1\", \"operator\": {\"staffId\": \"as-1\", \"role\": \"social-worker\"},
 \"recipient\": \"cpi.mantova\", \"caseId\": \"$2\",
 \"referral\": {\"service\": \"$3\", \"priority\": \"routine\", \"reasonCode\": \"long-term-unemployment\",
   \"consent\": {\"basis\": \"consent\", \"givenAt\": \"2026-11-20T09:30:00Z\"}, \"ageBand\": \"adult\"},
 \"private\": {\"person\": {\"name\": \"Maria Rossi\"}}}" >"$DIR/$1.json"
	"$BIN/rete" send -c "$DIR/agents/social.mantova/agent.ini" "$DIR/$1.json" --wait 30 >"$DIR/send.out" 2>&1 ||
		fail "referral $1 was not accepted: $(cat "$DIR/send.out")"
}
send r-1 mn-2026-0601 employment-orientation
send r-2 mn-2026-0602 training-voucher
send r-3 mn-2026-0603 training-voucher
send r-4 mn-2026-0604 training-voucher

CENV=() # the console's environment (libfaketime, in the last part)
start_console() {
	# the log emptied here, not by the start's own >: the background child
	# does that when it runs, and on a loaded machine up() read the log of
	# the console before, which said "serving", and URL came from that
	# log or the emptied one (the min_count-5 step's "HTTP 000 ... at :")
	: >"$DIR/console.log"
	env "${CENV[@]}" "$BIN/rete" console -c "$DIR/coord.ini" --listen 127.0.0.1:0 >"$DIR/console.log" 2>&1 &
	CPID=$!
	PIDS+=($CPID)
	up() { grep -q "serving coord.mantova's view at https://127.0.0.1:[0-9]*/ (sign-in required)" "$DIR/console.log"; }
	wait_for 30 up || fail "the console did not start: $(cat "$DIR/console.log")"
	URL=$(grep -o 'https://127.0.0.1:[0-9]*' "$DIR/console.log" | head -n 1)
}
C=(curl -s --cacert "$DIR/console.crt")
cookie_of() { # USER: a session's token
	"${C[@]}" -D - -o /dev/null --data-urlencode "user=$1" --data-urlencode "password=una password lunga" "$URL/login" |
		grep -oi 'rete_session=[0-9a-f]\{64\}' | head -n 1 | cut -d= -f2
}
start_console
TA=$(cookie_of anna)
TS=$(cookie_of sara)
[ -n "$TA" ] && [ -n "$TS" ] || fail "anna or sara cannot sign in"
get() { # TOKEN PATH OUT
	"${C[@]}" -f -H "Cookie: rete_session=$1" "$URL/$2" >"$DIR/$3" || fail "GET /$2: $(cat "$DIR/$3")"
}
four() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/overview" >"$DIR/ov-anna.json" && [ "$(jq -r .monitor.statusTotals.requested "$DIR/ov-anna.json")" = 4 ]; }
wait_for 30 four || fail "anna's overview has not the 4 referrals: $(jq -c .monitor.statusTotals "$DIR/ov-anna.json")"
get "$TS" api/overview ov-sara.json
# the coordinator: every number
[ "$(jq -c '[.monitor.byStatus[] | {s: .service, n: .counts.requested}]' "$DIR/ov-anna.json")" = \
	'[{"s":"employment-orientation","n":1},{"s":"training-voucher","n":3}]' ] ||
	fail "anna's overview: $(jq -c .monitor.byStatus "$DIR/ov-anna.json")"
# could_be X SHOWN ROUNDED: a true count X may be shown as SHOWN on a page
# that rounds to ROUNDED (1: exact); "suppressed" is a count of 3 or more
could_be() {
	case "$2" in
	"< 3") [ "$1" -ge 0 ] && [ "$1" -lt 3 ] ;; # zeros read "< 3" too
	suppressed) [ "$1" -ge 3 ] ;;
	*) if [ "$3" = 1 ] || [ "$2" = 0 ]; then [ "$1" = "$2" ]; else
		[ "$1" -ge 3 ] && [ $((($1 + 2) / 5 * 5)) = "$2" ]
	fi ;;
	esac
}
# range_of H A A2 T ROUNDED: the values a hidden count h may have, given
# that h + a is shown as T and a as A (and as A2: the same count shown
# twice): a reader's subtraction
range_of() {
	local h a out=""
	for h in $(seq 0 20); do
		could_be $h "$1" "$5" || continue
		for a in $(seq 0 20); do
			if could_be $a "$2" "$5" && could_be $a "$3" "$5" && could_be $((h + a)) "$4" "$5"; then
				out="$out $h"
				break
			fi
		done
	done
	echo "${out# }"
}
# at least two values: the hidden count is not given away
wide() { [ "$(echo $1 | wc -w)" -ge 2 ]; }
R=$(jq -r '.monitor.roundedTo // 1' "$DIR/ov-sara.json")
# employment-orientation's one referral: not a row of its own (its "< 3"
# would be 1 or 2, never 0), but in the others row, which is always there
[ "$(jq -c '[.monitor.byStatus[] | {s: .service, o: .others, n: .counts.requested, t: .total}]' "$DIR/ov-sara.json")" = \
	'[{"s":"training-voucher","o":null,"n":5,"t":5},{"s":null,"o":true,"n":"< 3","t":"< 3"}]' ] ||
	fail "sara's overview lists a row of fewer than 3 referrals by name, not under others: $(jq -c .monitor.byStatus "$DIR/ov-sara.json")"
[ "$(jq -r .monitor.statusTotals.requested "$DIR/ov-sara.json")" = 5 ] &&
	[ "$(jq -r .monitor.minCount "$DIR/ov-sara.json")" = 3 ] && [ "$R" = 5 ] ||
	fail "sara's overview totals: $(jq -c .monitor.statusTotals "$DIR/ov-sara.json"), roundedTo $R"
# R4: the log's size and the messages of each last minute are exact counts
# beside the rule: not in the steering group's overview, nor the log's size
# in their live-update stream; the coordinator's has them
[ "$(jq -c '[.monitor | has("logSize"), has("messagesPerMinute")]' "$DIR/ov-sara.json")" = '[false,false]' ] ||
	fail "sara's overview gives exact counts: logSize $(jq -c .monitor.logSize "$DIR/ov-sara.json"), messagesPerMinute $(jq -c .monitor.messagesPerMinute "$DIR/ov-sara.json")"
[ "$(jq -c '[.monitor | has("logSize"), has("messagesPerMinute")]' "$DIR/ov-anna.json")" = '[true,true]' ] ||
	fail "anna's overview lacks the log's size or the messages per minute"
"${C[@]}" -N -m 3 -H "Cookie: rete_session=$TS" "$URL/api/events" >"$DIR/ev-sara.txt" 2>/dev/null || true
"${C[@]}" -N -m 3 -H "Cookie: rete_session=$TA" "$URL/api/events" >"$DIR/ev-anna.txt" 2>/dev/null || true
grep -q '^data: {"version":' "$DIR/ev-sara.txt" && ! grep -q logSize "$DIR/ev-sara.txt" ||
	fail "sara's live-update stream: $(head -c 300 "$DIR/ev-sara.txt")"
grep -q '^data: {"logSize":' "$DIR/ev-anna.txt" ||
	fail "anna's live-update stream: $(head -c 300 "$DIR/ev-anna.txt")"
# the version sara reads is the time of the console's latest health
# refresh (every 5 s whatever happened), not a count of changes: one
# went up at each drain of events, and two readings of it gave how many
# referrals came in a quiet network (the reviewer's leak_version.sh)
get "$TS" api/health hv0-sara.json
get "$TS" api/overview ov-sara-v.json
get "$TS" api/health hv1-sara.json
sv=$(grep -o '^data: {"version":[0-9]*' "$DIR/ev-sara.txt" | head -n 1 | grep -o '[0-9]*$')
v=$(jq -r .version "$DIR/ov-sara-v.json")
a0=$(jq -r .health.askedAt "$DIR/hv0-sara.json")
a1=$(jq -r .health.askedAt "$DIR/hv1-sara.json")
[ "$(jq -r .version "$DIR/hv0-sara.json")" = "$a0" ] && [ "$(jq -r .version "$DIR/hv1-sara.json")" = "$a1" ] &&
	{ [ "$v" = "$a0" ] || [ "$v" = "$a1" ]; } && [ "${sv:-0}" -ge 1000000000000 ] ||
	fail "sara's version counts changes: overview $v, Salute $(jq -r .version "$DIR/hv0-sara.json") (health asked at $a0, then $a1), stream $sv"
[ "$(jq -r .version "$DIR/ov-anna.json")" -lt 1000000000 ] || fail "anna's version: $(jq -r .version "$DIR/ov-anna.json")"
# R3's finding 1: the "< 3" beside the other row and the total
rng=$(range_of "$(jq -r '.monitor.byStatus[1].counts.requested' "$DIR/ov-sara.json")" \
	"$(jq -r '.monitor.byStatus[0].counts.requested' "$DIR/ov-sara.json")" \
	"$(jq -r '.monitor.byStatus[0].total' "$DIR/ov-sara.json")" \
	"$(jq -r '.monitor.statusTotals.requested' "$DIR/ov-sara.json")" "$R")
wide "$rng" || fail "sara's overview gives employment-orientation's hidden count exactly: $rng ($(jq -c '.monitor | .byStatus, .statusTotals' "$DIR/ov-sara.json"))"
# the four wait for cpi.mantova (its agent is not running): its queue is 4
# for anna, rounded for sara, on the Panoramica and on Salute
queued() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/health" >"$DIR/h-anna.json" &&
	[ "$(jq -r '.health.agencies[] | select(.id == "cpi.mantova") | .queueDepth' "$DIR/h-anna.json")" = 4 ] &&
	"${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/overview" >"$DIR/ov-anna.json" &&
	[ "$(jq -r '.monitor.agencies[] | select(.id == "cpi.mantova") | .queueDepth' "$DIR/ov-anna.json")" = 4 ]; }
wait_for 30 queued || fail "anna does not see cpi.mantova's queue of 4: $(jq -c .health.agencies "$DIR/h-anna.json")"
get "$TS" api/overview ov-sara.json
get "$TS" api/health h-sara.json
q_ov=$(jq -r '.monitor.agencies[] | select(.id == "cpi.mantova") | .queueDepth' "$DIR/ov-sara.json")
q_h=$(jq -r '.health.agencies[] | select(.id == "cpi.mantova") | .queueDepth' "$DIR/h-sara.json")
[ "$q_ov" = 5 ] && [ "$q_h" = 5 ] ||
	fail "sara's queue of cpi.mantova is exact: Panoramica $q_ov, Salute $q_h (4 rounds to 5)"
[ "$(jq -r '.monitor.agencies[] | select(.id == "social.mantova") | .queueDepth' "$DIR/ov-sara.json")" = "< 3" ] ||
	fail "sara's queue of social.mantova: $(jq -c .monitor.agencies "$DIR/ov-sara.json")"
# (attack report s12, 8) the oldest message's time beside a queue shown:
# to the hour for sara, to the millisecond for anna
oldest() { jq -r ".$2.agencies[] | select(.id == \"cpi.mantova\") | .oldestUndeliveredAt // \"none\"" "$DIR/$1"; }
[ "$(oldest h-anna.json health)" != none ] && [ "$(oldest h-anna.json health)" = "$(oldest ov-anna.json monitor)" ] ||
	fail "anna's oldest undelivered time of cpi.mantova: Salute $(oldest h-anna.json health), Panoramica $(oldest ov-anna.json monitor)"
hour=$(oldest h-anna.json health | sed -E 's/:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$/:00:00Z/')
[ "$(oldest ov-sara.json monitor)" = "$hour" ] && [ "$(oldest h-sara.json health)" = "$hour" ] ||
	fail "sara's oldest undelivered time of cpi.mantova (queue shown): Panoramica $(oldest ov-sara.json monitor), Salute $(oldest h-sara.json health); want $hour (anna's $(oldest h-anna.json health) to the hour)"
# the log's size (every entry) and the checkpoints' sizes are not hers
[ "$(jq -c '[(.health | has("logSize")), (.witnesses | has("checkpointSize")), (.timestamp | has("size"))]' "$DIR/h-sara.json")" = '[false,false,false]' ] ||
	fail "sara's Salute gives the log's size: $(jq -c '[.health.logSize, .witnesses.checkpointSize, .timestamp.size]' "$DIR/h-sara.json")"
[ "$(jq -c '.health | has("logSize")' "$DIR/h-anna.json")" = true ] || fail "anna's Salute has no log size"
# the broker's problems carried the queue's length ("cpi.mantova has 4
# undelivered messages") and the log's size ("the latest checkpoint (size
# N) ... grew to M"): sara's say which agency waits and how long, no count
if [ -n "$FT" ]; then
	set_clock "+2h"
	late() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/health" >"$DIR/hp-anna.json" &&
		jq -r '.health.problems[]?' "$DIR/hp-anna.json" | grep -q '^cpi.mantova has 4 undelivered messages, the oldest waiting for'; }
	wait_for 30 late || fail "anna's Salute has not cpi.mantova's late queue: $(jq -c .health.problems "$DIR/hp-anna.json")"
	get "$TS" api/health hp-sara.json
	set_clock "+0"
	# the broker's clock back (libfaketime reads the file again in its
	# own time) before cpi.mantova's agent connects
	back() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/health" >"$DIR/hb-anna.json" &&
		! jq -r '.health.problems[]?' "$DIR/hb-anna.json" | grep -q 'undelivered'; }
	wait_for 60 back || fail "the broker's clock is not back: $(jq -c .health.problems "$DIR/hb-anna.json")"
	jq -r '.health.problems[]' "$DIR/hp-sara.json" >"$DIR/hp-sara.txt"
	grep -q '^cpi.mantova has undelivered messages, the oldest waiting for more than [0-9]* h; is its agent running?$' "$DIR/hp-sara.txt" &&
		! grep -Eq '[0-9]+ undelivered|size [0-9]|grew to [0-9]|checkpoint [0-9]' "$DIR/hp-sara.txt" ||
		fail "sara's Salute gives a count in its problems: $(cat "$DIR/hp-sara.txt")"
else
	echo "note: no libfaketime: the problems' counts are not tried"
fi

FROM=$(date -u -d '-1 day' +%F)
TO=$(date -u -d '+1 day' +%F)
Q="from=$FROM&to=$TO&by=agency,service"
get "$TS" "api/report?$Q&lang=en" rep-sara.json
get "$TA" "api/report?$Q&lang=en" rep-anna.json
[ "$(jq -r .minCount "$DIR/rep-sara.json")" = 3 ] && [ "$(jq -r .minCount "$DIR/rep-anna.json")" = 1 ] &&
	[ "$(jq -r .roundedTo "$DIR/rep-sara.json")" = 5 ] && [ "$(jq -r .roundedTo "$DIR/rep-anna.json")" = 1 ] ||
	fail "minCount/roundedTo: sara $(jq -c '[.minCount, .roundedTo]' "$DIR/rep-sara.json"), anna $(jq -c '[.minCount, .roundedTo]' "$DIR/rep-anna.json")"
[ "$(jq '[.rows[], .total | .[] | numbers | select(. != 0 and . % 5 != 0)] | length' "$DIR/rep-sara.json")" = 0 ] ||
	fail "sara's report shows a count not rounded to 5: $(jq -c .rows "$DIR/rep-sara.json")"
[ "$(jq -c '[.rows[] | [.[0], .[2], .[3]]]' "$DIR/rep-sara.json")" = \
	'[["social.mantova","training-voucher",5],["others","","< 3"]]' ] && [ "$(jq -r .othersRow "$DIR/rep-sara.json")" = 1 ] ||
	fail "sara's report lists a row of fewer than 3 referrals by name, not under others: $(jq -c '[.rows, .othersRow]' "$DIR/rep-sara.json")"
[ "$(jq -c '[.rows[] | .[3]]' "$DIR/rep-anna.json")" = '[1,3]' ] ||
	fail "anna's report, sent: $(jq -c .rows "$DIR/rep-anna.json")"
get "$TS" "api/report.csv?$Q&lang=it&sep=semicolon" rep-sara.csv
grep -q '^altri;;;< 3;' "$DIR/rep-sara.csv" && ! grep -q 'employment-orientation' "$DIR/rep-sara.csv" &&
	grep -q ';training-voucher;5;' "$DIR/rep-sara.csv" &&
	grep -q 'arrotondati a 5' "$DIR/rep-sara.csv" || fail "sara's CSV: $(cat "$DIR/rep-sara.csv")"
get "$TA" "api/report.csv?$Q&lang=it&sep=semicolon" rep-anna.csv
! grep -q 'arrotondati' "$DIR/rep-anna.csv" || fail "anna's CSV says rounded: $(cat "$DIR/rep-anna.csv")"
# the workbook: the marks as text, in a spreadsheet too
if command -v ssconvert >/dev/null; then
	get "$TS" "api/report.xlsx?$Q&lang=it" rep-sara.xlsx
	ssconvert -T Gnumeric_stf:stf_csv "$DIR/rep-sara.xlsx" "$DIR/rep-sara-x.csv" >/dev/null 2>&1 ||
		fail "ssconvert cannot read sara's XLSX"
	grep -q '^altri,,,"< 3",' "$DIR/rep-sara-x.csv" && ! grep -q 'employment-orientation' "$DIR/rep-sara-x.csv" &&
		grep -q '^social.mantova,cpi.mantova,training-voucher,5,' "$DIR/rep-sara-x.csv" &&
		grep -q '^Totale,,,5,' "$DIR/rep-sara-x.csv" && grep -q 'arrotondati a 5' "$DIR/rep-sara-x.csv" ||
		fail "sara's XLSX: $(cat "$DIR/rep-sara-x.csv")"
fi
get "$TS" "api/trend?from=$FROM&to=$TO&step=week" trend-sara.json
[ "$(jq '[.buckets[] | .sent, .accepted | numbers | select(. != 0 and . % 5 != 0)] | length' "$DIR/trend-sara.json")" = 0 ] &&
	[ "$(jq -r .roundedTo "$DIR/trend-sara.json")" = 5 ] ||
	fail "sara's Andamento shows a count not rounded: $(jq -c . "$DIR/trend-sara.json")"

# cpi.mantova takes the five (a fourth training-voucher one first),
# accepts the training-voucher ones and completes them, one successful
agent_ini cpi.mantova
start_agents cpi.mantova
CPI=${PIDS[-1]}
send r-5 mn-2026-0605 training-voucher
inbox() { [ "$(ls "$DIR/agents/cpi.mantova/spool/inbox/"*.json 2>/dev/null | wc -l)" -ge 5 ]; }
wait_for 30 inbox || fail "cpi.mantova has not the five: $(ls "$DIR/agents/cpi.mantova/spool/inbox")"
update() { # ID REFERRAL STATUS-JSON
	printf '%s\n' "{\"operator\": {\"staffId\": \"cm-1\", \"role\": \"case-manager\"},
 \"recipient\": \"social.mantova\", \"caseId\": \"mn-2026-060${2#r-}\", \"update\": {\"referralId\": \"$2\", $3}}" >"$DIR/$1.json"
	"$BIN/rete" send -c "$DIR/agents/cpi.mantova/agent.ini" "$DIR/$1.json" --wait 30 >"$DIR/send.out" 2>&1 ||
		fail "update $1 was not accepted: $(cat "$DIR/send.out")"
}
for r in r-2 r-3 r-4 r-5; do
	update $r-a $r '"status": "accepted"'
	update $r-p $r '"status": "in-progress"'
done
update r-2-c r-2 '"status": "completed", "outcome": {"result": "successful"}'
for r in r-3 r-4 r-5; do
	update $r-c $r '"status": "completed", "outcome": {"result": "unsuccessful", "reason": "client-refused"}'
done
done4() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/overview" >"$DIR/ov-anna2.json" &&
	[ "$(jq -c '.monitor.statusTotals | [.completed, .received]' "$DIR/ov-anna2.json")" = '[4,1]' ]; }
wait_for 30 done4 || fail "anna's overview: $(jq -c .monitor.statusTotals "$DIR/ov-anna2.json")"
get "$TS" api/overview ov-sara2.json
# R3's finding 2: training-voucher's row is all in completed (its other
# statuses 0), so the grand total minus it was employment-orientation's 1
rng=$(range_of "$(jq -r '.monitor.byStatus[1].total' "$DIR/ov-sara2.json")" \
	"$(jq -r '.monitor.byStatus[0].counts.completed' "$DIR/ov-sara2.json")" \
	"$(jq -r '.monitor.byStatus[0].total' "$DIR/ov-sara2.json")" \
	"$(jq -r '.monitor.statusTotals.total' "$DIR/ov-sara2.json")" "$R")
wide "$rng" || fail "sara's overview gives employment-orientation's total exactly: $rng ($(jq -c '.monitor | .byStatus, .statusTotals' "$DIR/ov-sara2.json"))"
# R3's finding 3: received but not accepted = to receive minus to accept
rng=$(range_of "$(jq -r '.monitor.statusTotals.received' "$DIR/ov-sara2.json")" \
	"$(jq -r '.monitor.times.toAccept.count' "$DIR/ov-sara2.json")" \
	"$(jq -r '.monitor.times.toAccept.count' "$DIR/ov-sara2.json")" \
	"$(jq -r '.monitor.times.toReceive.count' "$DIR/ov-sara2.json")" "$R")
wide "$rng" || fail "sara's overview gives the received count exactly: $rng ($(jq -c '.monitor | .statusTotals, .times' "$DIR/ov-sara2.json"))"
[ "$(jq '[.monitor | .statusTotals[], .overdueCount, (.times[] | .count), (.byStatus[] | .total, .counts[]) | numbers | select(. != 0 and . % 5 != 0)] | length' "$DIR/ov-sara2.json")" = 0 ] ||
	fail "sara's overview shows a count not rounded: $(jq -c .monitor "$DIR/ov-sara2.json")"
# grouped by status: employment-orientation's one, received, is not a
# "received" row (listed, it was 1 or 2); the four completed are
get "$TS" "api/report?from=$FROM&to=$TO&by=status&lang=en" st-sara.json
get "$TA" "api/report?from=$FROM&to=$TO&by=status&lang=en" st-anna.json
[ "$(jq -c '[.rows[] | .[0]]' "$DIR/st-sara.json")" = '["completed","others"]' ] ||
	fail "sara's report by status lists a status of fewer than 3 referrals by name: $(jq -c .rows "$DIR/st-sara.json")"
[ "$(jq -c '[.rows[] | .[0]]' "$DIR/st-anna.json")" = '["received","completed"]' ] ||
	fail "anna's report by status: $(jq -c .rows "$DIR/st-anna.json")"
# what sara's browser shows, after the pages' scripts ran (her session's
# cookie given to the browser): the others row in words, no row of
# employment-orientation, the queues and no log size on Salute
browser_start
go "$URL/login"
wd POST /cookie "$(jq -nc --arg v "$TS" '{cookie: {name: "rete_session", value: $v, path: "/", secure: true}}')" >/dev/null
rendered() { [ -n "$(js 'return document.body.dataset.version || ""')" ]; }
go "$URL/"
wait_for 30 rendered || fail "sara's Panoramica never rendered: $(js 'return document.body.innerText')"
[ "$(js 'return String(document.querySelectorAll("#status [data-code=employment-orientation]").length)')" = 0 ] &&
	js 'return document.getElementById("status").innerText' | grep -q '^altri' ||
	fail "sara's Panoramica: $(js 'return document.getElementById("status").innerText')"
go "$URL/salute"
wait_for 30 rendered || fail "sara's Salute never rendered: $(js 'return document.body.innerText')"
js 'return document.body.innerText' >"$DIR/salute-sara.txt"
[ -z "$(js 'return document.getElementById("log-size") ? "yes" : ""')" ] && ! grep -q 'Voci nel registro' "$DIR/salute-sara.txt" ||
	fail "sara's Salute shows the log's size: $(cat "$DIR/salute-sara.txt")"
# (the console asks the broker's health every 5 s, and sara's page is
# drawn again at each: the queue emptied a moment ago may read 5 first)
salute_q() { q=$(js 'const r = [...document.querySelectorAll("#agencies tr")].find(r => r.querySelector("[data-code=\"cpi.mantova\"]")); return r ? r.cells[2].innerText : ""'); [ "$q" = "< 3" ]; }
wait_for 30 salute_q || fail "sara's Salute, cpi.mantova's queue (now empty): '$q'"
# beside a hidden length the oldest message's time reads "riservato"
# (withheld), not "nessuno" (none), for an empty queue as for one of 1 or 2
o=$(js 'const r = [...document.querySelectorAll("#agencies tr")].find(r => r.querySelector("[data-code=\"cpi.mantova\"]")); return r ? r.cells[3].innerText : ""')
[ "$o" = riservato ] || fail "sara's Salute, cpi.mantova's oldest waiting message beside '< 3': '$o'"
report_rows() { [ "$(js 'return document.body.dataset.rows || ""')" = 2 ]; }
go "$URL/rapporto?from=$FROM&to=$TO&by=agency,service"
wait_for 30 report_rows || fail "sara's Rapporto: $(js 'return document.body.innerText')"
js 'return document.getElementById("report").innerText' >"$DIR/rapporto-sara.txt"
grep -q '^altri' "$DIR/rapporto-sara.txt" &&
	[ "$(js 'return String(document.querySelectorAll("#report [data-code=employment-orientation]").length)')" = 0 ] ||
	fail "sara's Rapporto: $(cat "$DIR/rapporto-sara.txt")"
go "$URL/flussi?from=$FROM&to=$TO"
wait_for 30 report_rows || fail "sara's Flussi: $(js 'return document.body.innerText')"
js 'return document.getElementById("matrix").innerText + "\n" + document.getElementById("outcomes").innerText' >"$DIR/flussi-sara.txt"
grep -q '^altri' "$DIR/flussi-sara.txt" || fail "sara's Flussi: $(cat "$DIR/flussi-sara.txt")"
get "$TA" api/overview ov-anna2.json
[ "$(jq -r '.monitor.times.toAccept.count' "$DIR/ov-anna2.json")" = 4 ] &&
	[ "$(jq -r '.monitor.roundedTo // 1' "$DIR/ov-anna2.json")" = 1 ] ||
	fail "anna's overview is not exact: $(jq -c '.monitor.times' "$DIR/ov-anna2.json")"

# a higher threshold in coord.ini
printf '\n[report]\nmin_count = 5\n' >>"$DIR/coord.ini"
kill "$CPID"
wait "$CPID" 2>/dev/null
# the console's clock with the broker's from here on (+0 for now): the
# agents' "not seen for" on Salute is the console's time minus lastSeenAt
[ -n "$FT" ] && CENV=(LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/faketime.rc" FAKETIME_NO_CACHE=1
	FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
start_console
TS=$(cookie_of sara)
# (the new console reads the broker's snapshot after it starts serving);
# with min_count 5 the lowest figure shown is 10, standing for 5 to 12 (5
# would stand for 5 to 7 only)
# (a sign-in that came back without a session, on a loaded machine, is
# tried again: the CI run once failed here with nothing in the answer)
five() {
	[ -n "$TS" ] || TS=$(cookie_of sara)
	code=$("${C[@]}" -S -o "$DIR/ov-sara5.json" -w '%{http_code}' -H "Cookie: rete_session=$TS" "$URL/api/overview" 2>"$DIR/curl5.err")
	[ "$code" = 200 ] || { [ "$code" = 401 ] && TS=; return 1; }
	[ "$(jq -c '.monitor.statusTotals | [.received, .completed, .total]' "$DIR/ov-sara5.json")" = '["< 5","< 5",10]' ]
}
wait_for 30 five || fail "min_count 5: HTTP $code, session '${TS:0:8}...' at $URL: $(head -c 600 "$DIR/ov-sara5.json" 2>/dev/null); curl: $(cat "$DIR/curl5.err"); the console's log: $(tail -n 20 "$DIR/console.log")"
# (attack report s12, 8) one referral waits for cpi.mantova (its agent
# stopped): sara reads "< 5" and no time at all (the time of a single
# referral, to the millisecond, was beside the "< 3"); anna reads both
kill "$CPI"
wait "$CPI" 2>/dev/null
TA=$(cookie_of anna)
send r-6 mn-2026-0606 training-voucher
one() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/health" >"$DIR/h1-anna.json" &&
	[ "$(jq -r '.health.agencies[] | select(.id == "cpi.mantova") | .queueDepth' "$DIR/h1-anna.json")" = 1 ]; }
wait_for 30 one || fail "anna does not see cpi.mantova's queue of 1: $(jq -c .health.agencies "$DIR/h1-anna.json")"
get "$TA" api/overview ov1-anna.json
get "$TS" api/overview ov1-sara.json
get "$TS" api/health h1-sara.json
[ "$(oldest h1-anna.json health)" != none ] && [ "$(oldest ov1-anna.json monitor)" != none ] ||
	fail "anna has not the oldest undelivered time of cpi.mantova: $(jq -c .health.agencies "$DIR/h1-anna.json")"
for f in "ov1-sara.json monitor" "h1-sara.json health"; do
	set -- $f
	[ "$(jq -c ".$2.agencies[] | select(.id == \"cpi.mantova\") | [.queueDepth, has(\"oldestUndeliveredAt\")]" "$DIR/$1")" = '["< 5",false]' ] ||
		fail "sara's $2 gives the time of cpi.mantova's single waiting referral: $(jq -c ".$2.agencies" "$DIR/$1")"
done
# (review s12 small-eyes, 2) nor a problem that moves with its age: the
# broker says "cpi.mantova has 1 undelivered message, the oldest waiting
# for N min" from the hour on, and "more than 1 h" appearing on sara's
# Salute (refreshed every 5 s) dated the referral to the refresh, "more
# than 2 h" again an hour later. Beside "< 5" sara reads only what the
# agent's lastSeenAt says: not seen for 2 h (the clocks of the broker and
# the console moved on 2 h together, the agent stopped before)
if [ -n "$FT" ]; then
	set_clock "+2h"
	TA=$(cookie_of anna)
	late1() { "${C[@]}" -f -H "Cookie: rete_session=$TA" "$URL/api/health" >"$DIR/hl-anna.json" &&
		jq -r '.health.problems[]?' "$DIR/hl-anna.json" | grep -q '^cpi.mantova has 1 undelivered message, the oldest waiting for'; }
	wait_for 30 late1 || fail "anna's Salute has not cpi.mantova's late message: $(jq -c .health.problems "$DIR/hl-anna.json")"
	TS=$(cookie_of sara)
	get "$TS" api/health hl-sara.json
	jq -r '.health.problems[]?' "$DIR/hl-sara.json" | grep '^cpi.mantova' >"$DIR/hl-sara.txt"
	if grep -Eq 'undelivered|oldest|waiting' "$DIR/hl-sara.txt" ||
		! grep -Eq "^cpi.mantova's agent has not been seen for more than [0-9]+ h; is it running\?$" "$DIR/hl-sara.txt"; then
		fail "sara's Salute, cpi.mantova's queue '< 5' with its agent away 2 h: problems $(jq -c .health.problems "$DIR/hl-sara.json")"
	fi
	[ "$(jq -r '.health.ok' "$DIR/hl-sara.json")" = false ] || fail "sara's Salute says ok beside a problem: $(jq -c .health "$DIR/hl-sara.json")"
fi
echo "ok: the steering group's pages hide small counts and round the others to 5"
exit 0
