#!/bin/bash
# test_console_small_counts.sh — the steering group's pages hide small
# counts (GDPR art. 25, 89; docs/coordinator.md): one referral of
# social.mantova to cpi.mantova for employment-orientation and three for
# training-voucher (cpi.mantova's agent is not running: all stay sent).
# sara, of the steering group, reads the overview with the single one as
# "< 3" and its column's total not given away by the other row (the three
# are hidden too, as "suppressed"), the report (JSON, CSV, by agency and
# service) with no count of 1 or 2 and minCount 3, and Andamento's totals;
# anna, the coordinator, reads the same pages with every number. With
# [report] min_count = 5 sara's "3" becomes "< 5" too.
# Waits poll with deadlines; every process started is stopped, the folder
# removed.
set -u

. "$(dirname "$0")/lib.sh"
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
start_broker
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

start_console() {
	"$BIN/rete" console -c "$DIR/coord.ini" --listen 127.0.0.1:0 >"$DIR/console.log" 2>&1 &
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
# the steering group: the single one hidden, and the three with it (the
# total 4 minus 3 would give it away)
[ "$(jq -c '[.monitor.byStatus[] | {s: .service, n: .counts.requested, t: .total}]' "$DIR/ov-sara.json")" = \
	'[{"s":"employment-orientation","n":"< 3","t":"< 3"},{"s":"training-voucher","n":"suppressed","t":"suppressed"}]' ] ||
	fail "sara's overview shows a small count: $(jq -c .monitor.byStatus "$DIR/ov-sara.json")"
[ "$(jq -r .monitor.statusTotals.requested "$DIR/ov-sara.json")" = 4 ] &&
	[ "$(jq -r .monitor.minCount "$DIR/ov-sara.json")" = 3 ] ||
	fail "sara's overview totals: $(jq -c .monitor.statusTotals "$DIR/ov-sara.json")"

FROM=$(date -u -d '-1 day' +%F)
TO=$(date -u -d '+1 day' +%F)
Q="from=$FROM&to=$TO&by=agency,service"
get "$TS" "api/report?$Q&lang=en" rep-sara.json
get "$TA" "api/report?$Q&lang=en" rep-anna.json
[ "$(jq -r .minCount "$DIR/rep-sara.json")" = 3 ] && [ "$(jq -r .minCount "$DIR/rep-anna.json")" = 1 ] ||
	fail "minCount: sara $(jq .minCount "$DIR/rep-sara.json"), anna $(jq .minCount "$DIR/rep-anna.json")"
[ "$(jq '[.rows[], .total | .[] | select(. == 1 or . == 2)] | length' "$DIR/rep-sara.json")" = 0 ] ||
	fail "sara's report shows a count of 1 or 2: $(jq -c .rows "$DIR/rep-sara.json")"
[ "$(jq -c '[.rows[] | .[3]]' "$DIR/rep-sara.json")" = '["< 3","suppressed"]' ] ||
	fail "sara's report, sent: $(jq -c .rows "$DIR/rep-sara.json")"
[ "$(jq -c '[.rows[] | .[3]]' "$DIR/rep-anna.json")" = '[1,3]' ] ||
	fail "anna's report, sent: $(jq -c .rows "$DIR/rep-anna.json")"
get "$TS" "api/report.csv?$Q&lang=it&sep=semicolon" rep-sara.csv
grep -q '"employment-orientation";"< 3";' "$DIR/rep-sara.csv" && grep -q '"training-voucher";"riservato";' "$DIR/rep-sara.csv" ||
	fail "sara's CSV: $(cat "$DIR/rep-sara.csv")"
# the workbook: the marks as text, in a spreadsheet too
if command -v ssconvert >/dev/null; then
	get "$TS" "api/report.xlsx?$Q&lang=it" rep-sara.xlsx
	ssconvert -T Gnumeric_stf:stf_csv "$DIR/rep-sara.xlsx" "$DIR/rep-sara-x.csv" >/dev/null 2>&1 ||
		fail "ssconvert cannot read sara's XLSX"
	grep -q '^social.mantova,cpi.mantova,employment-orientation,"< 3",' "$DIR/rep-sara-x.csv" &&
		grep -q '^social.mantova,cpi.mantova,training-voucher,riservato,' "$DIR/rep-sara-x.csv" ||
		fail "sara's XLSX: $(cat "$DIR/rep-sara-x.csv")"
fi
get "$TS" "api/trend?from=$FROM&to=$TO&step=week" trend-sara.json
[ "$(jq '[.buckets[] | .sent, .accepted | select(. == 1 or . == 2)] | length' "$DIR/trend-sara.json")" = 0 ] ||
	fail "sara's Andamento shows a small count: $(jq -c .buckets "$DIR/trend-sara.json")"

# a higher threshold in coord.ini
printf '\n[report]\nmin_count = 5\n' >>"$DIR/coord.ini"
kill "$CPID"
wait "$CPID" 2>/dev/null
start_console
TS=$(cookie_of sara)
# (the new console reads the broker's snapshot after it starts serving)
five() { "${C[@]}" -f -H "Cookie: rete_session=$TS" "$URL/api/overview" >"$DIR/ov-sara5.json" && [ "$(jq -r .monitor.statusTotals.requested "$DIR/ov-sara5.json")" = "< 5" ]; }
wait_for 30 five || fail "min_count 5: $(jq -c .monitor.statusTotals "$DIR/ov-sara5.json")"
echo "ok: the steering group's pages hide small counts"
exit 0
