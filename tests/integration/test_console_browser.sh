#!/bin/bash
# test_console_browser.sh — the web console (rete console) in a real browser:
# headless Chromium (Debian's chromium + chromium-driver, driven over the
# WebDriver protocol with curl, no network beyond 127.0.0.1) loads the pages
# of a console attached to a real broker with real agents that played a
# small story: a referral social.mantova -> cpi.mantova accepted and in
# progress, one completed, and an emergency referral left unanswered past
# its 3 s limit (overdue).
#
# It shows: the rendered Panoramica (after its scripts ran) lists the
# overdue referral first, by its short label and the agencies' directory
# names; its numbers equal `rete monitor --json`'s; a new referral appears
# without a reload (Server-Sent Events); the switch to English works; the
# Salute page shows the broker's health, the agencies that cosigned the
# latest checkpoint (they cosign by default) with the witness policy of the
# console's configuration (met; the one witness that never cosigns named as
# missing), the newest time stamp of the test TSA (rete-test-tsa, with a CA
# it made here), and, for a second broker that asks no TSA, "no TSA
# configured"; the Caso page offers each message's evidence bundle, whose
# download verifies with `rete evidence verify --broker-key --tsa-ca` and
# tells the story; no personal value of the story
# appears in any page or answer; the pages carry a strict
# Content-Security-Policy and no inline script; bad input gets a 4xx with a
# sentence; every page read is in the access record; a listen address that
# is not loopback is refused with a sentence. Screenshots of each page are
# kept in the build folder (console-screenshots/).
# Waits poll with deadlines (no sleep as synchronisation); every process
# started is stopped, the folder removed.
set -u

SRC=${RETE_SOURCE_DIR:?set RETE_SOURCE_DIR to the source folder}
. "$(dirname "$0")/lib.sh"
itest_init console
SHOTS=${RETE_CONSOLE_SHOTS:-$BIN/../console-screenshots}

. "$(dirname "$0")/lib_browser.sh"
browser_need

mkdir -p "$DIR/broker2" "$SHOTS"
make_keys broker.mantova social.mantova cpi.mantova coord.mantova

# a time-stamping authority for the broker (lib.sh)
start_tsa 'rete console test'

{
	tsa_ini
	cat <<EOT
checkpoint_interval = 1s
heartbeat = 1s
EOT
	agencies_ini "Servizi sociali di Mantova"
} | broker_ini
agent_ini social.mantova cpi.mantova
coord_ini <<EOT
time_zone = Europe/Rome

[console]
access_log = console-access.jsonl
witnesses = witnesses.policy
EOT

start_broker
start_agents social.mantova cpi.mantova

# --- the story ------------------------------------------------------------------
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
 "private": {"person": {"name": "Maria Rossi", "fiscalCode": "RSSMRA85M41E897X",
   "contacts": [{"kind": "phone", "value": "+39 0376 555 0101"}]}}}'
}
update() { # INI NAME REFERRAL RECIPIENT STATUS-AND-MORE
	send_as "$1" "$2" '{"operator": {"staffId": "x-1", "role": "case-manager"},
 "recipient": "'"$4"'", "caseId": "mn-2026-0999",
 "update": {"referralId": "'"$3"'", '"$5"'}}'
}
referral r-ok routine
referral r-done routine
referral r-late emergency
update "$CPI" ok1 r-ok social.mantova '"status": "accepted"'
update "$CPI" ok2 r-ok social.mantova '"status": "in-progress"'
update "$CPI" d1 r-done social.mantova '"status": "accepted"'
update "$CPI" d2 r-done social.mantova '"status": "in-progress"'
update "$CPI" d3 r-done social.mantova '"status": "completed", "outcome": {"result": "successful"}'

story_ok() {
	"$BIN/rete" monitor -c "$DIR/coord.ini" --json >"$DIR/mon.json" 2>&1 || return 1
	[ "$(jq -r '[.overdue[].referralId] | join(",")' "$DIR/mon.json")" = r-late ] &&
		[ "$(jq -r '.statusTotals.total' "$DIR/mon.json")" = 3 ] &&
		[ "$(jq -r '.statusTotals.completed' "$DIR/mon.json")" = 1 ]
}
wait_for 40 story_ok || fail "the story did not settle: $(cat "$DIR/mon.json")"

# the console's witness policy: the two agencies (as `rete witnesses` lists
# them) and the coordinator, who never cosigns; two are enough
"$BIN/rete" witnesses -c "$DIR/coord.ini" >"$DIR/witnesses.policy" 2>"$DIR/witnesses.out" ||
	fail "rete witnesses: $(cat "$DIR/witnesses.out")"
printf 'witness coord.mantova %s\nquorum 2\n' "$(cat "$DIR/keys/coord.mantova.pub")" >>"$DIR/witnesses.policy"

# --- a listen address that is not loopback is refused ------------------------------
"$BIN/rete" console -c "$DIR/coord.ini" --listen 192.0.2.10:8480 >"$DIR/remote.out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "a remote listen without TLS: exit $rc, want 2: $(cat "$DIR/remote.out")"
grep -q "will not listen on 192.0.2.10:8480" "$DIR/remote.out" ||
	fail "a remote listen without TLS: no sentence: $(cat "$DIR/remote.out")"

# --- the console --------------------------------------------------------------------
"$BIN/rete" console -c "$DIR/coord.ini" --listen 127.0.0.1:0 >"$DIR/console.log" 2>&1 &
CONSOLE_PID=$!
PIDS+=($CONSOLE_PID)
console_up() { grep -q "serving coord.mantova's view at http://127.0.0.1:" "$DIR/console.log"; }
wait_for 30 console_up || fail "the console did not start"
URL=$(grep -o 'http://127.0.0.1:[0-9]*/' "$DIR/console.log" | head -n 1)
URL=${URL%/}
# the log holds the console's sentences only, no libmicrohttpd complaint
# about options of a TLS it does not use
grep -q "MHD" "$DIR/console.log" && fail "libmicrohttpd's noise in the log: $(cat "$DIR/console.log")"

# headers: a strict CSP; the pages hold no inline script
curl -s -D "$DIR/h.txt" -o "$DIR/p.html" "$URL/panoramica" || fail "GET /panoramica"
grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" "$DIR/h.txt" ||
	fail "no strict CSP: $(cat "$DIR/h.txt")"
grep -o '<script[^>]*>' "$DIR/p.html" | grep -v ' src=' && fail "an inline script in the page"
grep -qi '^x-content-type-options: nosniff' "$DIR/h.txt" || fail "no nosniff"
# every page: its title, its name on the body, its own link marked in the
# navigation (one), the chart library where it draws, and no inline script
for pt in panoramica:Panoramica flussi:Flussi andamento:Andamento rapporto:Rapporto caso:Caso salute:Salute; do
	pg=${pt%%:*}
	curl -sf -o "$DIR/p-$pg.html" "$URL/$pg" || fail "GET /$pg"
	grep -qF "<title>rete · ${pt#*:}</title>" "$DIR/p-$pg.html" &&
		grep -qF "<body data-page=\"$pg\">" "$DIR/p-$pg.html" &&
		grep -qF "<a href=\"/$pg\" class=\"here\"" "$DIR/p-$pg.html" &&
		[ "$(grep -c 'class="here"' "$DIR/p-$pg.html")" = 1 ] &&
		grep -qF '<main>' "$DIR/p-$pg.html" && grep -qF '<footer>' "$DIR/p-$pg.html" &&
		[ "$(grep -c 'chart.min.js' "$DIR/p-$pg.html")" = "$(case $pg in flussi | andamento) echo 1 ;; *) echo 0 ;; esac)" ] ||
		fail "the page /$pg: $(head -n 25 "$DIR/p-$pg.html")"
	grep -o '<script[^>]*>' "$DIR/p-$pg.html" | grep -v ' src=' && fail "an inline script in /$pg"
done
curl -sf "$URL/" | cmp -s - "$DIR/p-panoramica.html" || fail "/ is not the Panoramica"
# bad input: a 4xx with a sentence, never a crash
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/panoramica?lang=xx")
[ "$code" = 400 ] && grep -q "use lang=it or lang=en" "$DIR/bad.txt" || fail "lang=xx: $code $(cat "$DIR/bad.txt")"
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/static/..%2fconsole.c")
[ "$code" = 400 ] || fail "/static/..%2f: $code $(cat "$DIR/bad.txt")"
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' -X POST "$URL/api/overview")
[ "$code" = 405 ] || fail "POST: $code"
# DNS rebinding: another site's name made to resolve to 127.0.0.1 would let
# its page read the console (no accounts on loopback); the console answers
# only a Host that is a loopback address or localhost
for p in /api/overview /panoramica "/api/report.csv?from=2026-01-01&to=2026-01-31"; do
	code=$(curl -s -m 10 -o "$DIR/bad.txt" -w '%{http_code}' -H 'Host: evil.example:80' "$URL$p")
	[ "$code" = 421 ] && grep -q "not this console's address" "$DIR/bad.txt" ||
		fail "Host: evil.example, $p: $code $(cat "$DIR/bad.txt")"
done
code=$(curl -s -m 10 -o "$DIR/bad.txt" -w '%{http_code}' -H 'Host: evil.example' "$URL/api/events")
[ "$code" = 503 ] && ! grep -q "event:" "$DIR/bad.txt" || fail "Host: evil.example, /api/events: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: localhost:${URL##*:}" "$URL/api/overview")
[ "$code" = 200 ] || fail "Host: localhost: $code"
kill -0 $CONSOLE_PID || fail "the console died on bad input"

# --- the browser ----------------------------------------------------------------------
browser_start
shot() { wd GET /screenshot | jq -r . | base64 -d >"$SHOTS/$1.png" || fail "screenshot $1"; }
rendered() { [ -n "$(js 'return document.body.dataset.version || ""')" ]; }

go "$URL/"
wait_for 30 rendered || fail "the Panoramica never rendered: $(js 'return document.body.innerText')"
js 'return document.documentElement.outerHTML' >"$DIR/dom-it.html"
js 'return document.body.innerText' >"$DIR/text-it.txt"
shot panoramica-it

# the overdue referral first: its section comes first, by its label, with the
# directory's names, who waits on whom, since when, how late
want_label=$(jq -r '.overdue[0].label' "$DIR/mon.json")
got_label=$(js 'const li = document.querySelector("#overdue li[data-label]"); return li ? li.dataset.label : ""')
[ "$got_label" = "$want_label" ] || fail "first overdue: got '$got_label', want '$want_label'"
[ "$(js 'return String(document.querySelectorAll("#overdue li[data-label]").length)')" = \
	"$(jq -r '.overdue | length' "$DIR/mon.json")" ] || fail "overdue count differs from rete monitor --json"
first_h2=$(js 'return document.querySelector("main h2").innerText')
case "$first_h2" in "Segnalazioni in ritardo"*) ;; *) fail "the first section is '$first_h2'" ;; esac
grep -q "Servizi sociali di Mantova aspetta Centro per l'Impiego dal " "$DIR/text-it.txt" ||
	fail "no 'who waits on whom, since when': $(cat "$DIR/text-it.txt")"
grep -q "in ritardo di " "$DIR/text-it.txt" || fail "no 'how late'"
grep -q "Segnalazione $want_label" "$DIR/text-it.txt" || fail "no short label $want_label"
grep -Eq 'm-[0-9a-f]{32}' "$DIR/text-it.txt" && fail "a referral shown by its message id"
grep -q "completata" "$DIR/text-it.txt" && grep -q "in corso" "$DIR/text-it.txt" ||
	fail "statuses not in words"
# its numbers equal rete monitor --json's (taken after the page, same log size)
"$BIN/rete" monitor -c "$DIR/coord.ini" --json >"$DIR/mon-now.json" || fail "monitor --json"
for k in $(jq -r '.statusTotals | keys[] | select(. != "total")' "$DIR/mon-now.json"); do
	got=$(js "return document.getElementById('total-$k').innerText")
	want=$(jq -r ".statusTotals[\"$k\"]" "$DIR/mon-now.json")
	[ "$got" = "$want" ] || fail "status $k: page $got, rete monitor --json $want"
done
[ "$(js 'return document.getElementById("status-total").innerText')" = \
	"$(jq -r .statusTotals.total "$DIR/mon-now.json")" ] || fail "total differs"
for k in toReceive toAccept toComplete; do
	[ "$(js "return document.getElementById('times-$k').innerText")" = \
		"$(jq -r ".times.$k.count" "$DIR/mon-now.json")" ] || fail "times $k differ"
done

# a new referral appears without a reload
before=$(js 'return document.getElementById("status-total").innerText')
js 'window.__notReloaded = "yes"; return ""' >/dev/null
referral r-new routine
grown() {
	[ "$(js 'return document.getElementById("status-total").innerText')" = "$((before + 1))" ] &&
		[ "$(js 'return window.__notReloaded || ""')" = yes ]
}
wait_for 30 grown || fail "the new referral did not appear without a reload (total $(js 'return document.getElementById("status-total").innerText'), was $before)"
[ "$(js 'return document.getElementById("live").dataset.state')" = on ] || fail "not live"

# English
wd POST /element '{"using": "css selector", "value": "#lang"}' >"$DIR/el.json"
EL=$(jq -r '.[keys[0]]' "$DIR/el.json")
wd POST "/element/$EL/click" '{}' >/dev/null
english() { js 'return document.body.innerText' | grep -q "Overdue referrals"; }
wait_for 10 english || fail "no English after the switch"
js 'return document.body.innerText' >"$DIR/text-en.txt"
grep -q "Servizi sociali di Mantova waits on Centro per l'Impiego since " "$DIR/text-en.txt" ||
	fail "English: no 'waits on': $(cat "$DIR/text-en.txt")"
grep -q "in progress" "$DIR/text-en.txt" || fail "English: statuses not in words"
[ "$(js 'return document.documentElement.lang')" = en ] || fail "html lang not en"
shot panoramica-en

# Salute (English kept by the switch), then back to Italian by the address
go "$URL/salute"
wait_for 30 rendered || fail "the Salute page never rendered"
js 'return document.body.innerText' >"$DIR/text-salute.txt"
grep -q "Broker state" "$DIR/text-salute.txt" || fail "Salute: $(cat "$DIR/text-salute.txt")"
[ -n "$(js 'return document.getElementById("log-size").innerText')" ] || fail "Salute: no log size"
go "$URL/salute?lang=it"
wait_for 30 rendered || fail "the Salute page never rendered"
js 'return document.body.innerText' >"$DIR/text-salute-it.txt"
grep -q "Stato del broker" "$DIR/text-salute-it.txt" || fail "Salute in Italian"
grep -Eq "Tutto in ordine|Ci sono problemi" "$DIR/text-salute-it.txt" || fail "Salute: no state"
# witnesses: both agencies cosigned the latest checkpoint (by their directory
# names), the policy is met and the coordinator is named as missing; no TSA
cosigned() {
	[ "$(js 'return String(document.querySelectorAll("#witnesses tr[data-cosigned=yes]").length)')" = 2 ] &&
		js 'return document.getElementById("witness-state").dataset.ok' | grep -q true
}
wait_for 30 cosigned || fail "Salute: the agencies' cosignatures are not shown: $(js 'return document.body.innerText')"
js 'return document.body.innerText' >"$DIR/text-salute-it.txt"
grep -q "Servizi sociali di Mantova	ha controfirmato il [0-9]" "$DIR/text-salute-it.txt" &&
	grep -q "Centro per l'Impiego	ha controfirmato il [0-9]" "$DIR/text-salute-it.txt" &&
	grep -q "Coordinamento	manca" "$DIR/text-salute-it.txt" &&
	grep -q "Regola dei testimoni rispettata: 2 di 3 (ne servono 2)" "$DIR/text-salute-it.txt" ||
	fail "Salute: witnesses: $(cat "$DIR/text-salute-it.txt")"
[ "$(js 'return document.getElementById("witness-size").innerText')" -ge 10 ] || fail "Salute: checkpoint size"
# time-stamping: the newest token's time and checkpoint size, as the broker says
grep -q "Ultima marca temporale	[0-9]" "$DIR/text-salute-it.txt" || fail "Salute: time-stamping: $(cat "$DIR/text-salute-it.txt")"
[ "$(js 'return document.getElementById("ts-size").innerText')" -ge 10 ] || fail "Salute: the stamped checkpoint's size"
js 'return document.documentElement.outerHTML' >"$DIR/dom-salute.html"
shot salute-it
wd POST /element '{"using": "css selector", "value": "#lang"}' >"$DIR/el.json"
EL=$(jq -r '.[keys[0]]' "$DIR/el.json")
wd POST "/element/$EL/click" '{}' >/dev/null
salute_en() { js 'return document.body.innerText' | grep -q "Witness policy met: 2 of 3 (needs 2)"; }
wait_for 10 salute_en || fail "Salute in English: $(js 'return document.body.innerText')"
js 'return document.body.innerText' >"$DIR/text-salute-en.txt"
grep -q "Centro per l'Impiego	cosigned at " "$DIR/text-salute-en.txt" && grep -q "Coordinamento	missing" "$DIR/text-salute-en.txt" &&
	grep -q "Newest time-stamp	[0-9]" "$DIR/text-salute-en.txt" || fail "Salute in English: $(cat "$DIR/text-salute-en.txt")"
shot salute-en

# Rapporto: every age band of the pair (zeros too), Italian headers; its
# downloads open in gnumeric (ssconvert) with the same numbers as rete report
TODAY=$(TZ=Europe/Rome date +%F)
FROM=$(TZ=Europe/Rome date -d yesterday +%F)
go "$URL/rapporto?from=$FROM&to=$TODAY&by=agency,age-band&lang=it"
report_rendered() { [ "$(js 'return document.body.dataset.rows || ""')" = 5 ]; }
wait_for 30 report_rendered || fail "the Rapporto did not show 5 rows: $(js 'return document.body.innerText')"
js 'return document.body.innerText' >"$DIR/text-report.txt"
grep -q "Chi invia" "$DIR/text-report.txt" && grep -q "Fascia d'età" "$DIR/text-report.txt" ||
	fail "Rapporto: no Italian headers"
for band in 0-3 3-5 6-13 14-18 adulti; do
	grep -q "$band" "$DIR/text-report.txt" || fail "Rapporto: no row for the age band $band"
done
shot rapporto-it
"$BIN/rete" report -c "$DIR/coord.ini" --from "$FROM" --to "$TODAY" --by agency,age-band --min-count 1 \
	--format json >"$DIR/rep.json" || fail "rete report --format json"
[ "$(jq '.groups | length' "$DIR/rep.json")" = 5 ] || fail "rete report: not the five age bands"
want_sent=$(jq '.total.sent' "$DIR/rep.json")
Q="from=$FROM&to=$TODAY&by=agency,age-band"
curl -sf -D "$DIR/rep-it.csv.head" -o "$DIR/rep-it.csv" "$URL/api/report.csv?$Q&sep=semicolon&lang=it" ||
	fail "report.csv"
curl -sf -D "$DIR/rep.xlsx.head" -o "$DIR/rep.xlsx" "$URL/api/report.xlsx?$Q&lang=it" || fail "report.xlsx"
# the downloads' names and types, in each language; a bad argument is a 400
# with its sentence for each, a report of the broker's it cannot build too
grep -qi "^content-type: text/csv; charset=utf-8" "$DIR/rep-it.csv.head" &&
	grep -qi "^content-disposition: attachment; filename=\"rapporto-$FROM-$TODAY.csv\"" "$DIR/rep-it.csv.head" ||
	fail "report.csv's head: $(cat "$DIR/rep-it.csv.head")"
grep -qi "^content-type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" "$DIR/rep.xlsx.head" &&
	grep -qi "^content-disposition: attachment; filename=\"rapporto-$FROM-$TODAY.xlsx\"" "$DIR/rep.xlsx.head" ||
	fail "report.xlsx's head: $(cat "$DIR/rep.xlsx.head")"
for ext in csv xlsx; do
	curl -sf -D "$DIR/rep-en.head" -o "$DIR/rep-en.$ext" "$URL/api/report.$ext?$Q&lang=en" || fail "report.$ext in English"
	grep -qi "^content-disposition: attachment; filename=\"report-$FROM-$TODAY.$ext\"" "$DIR/rep-en.head" ||
		fail "report.$ext's head in English: $(cat "$DIR/rep-en.head")"
	code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/report.$ext?from=$FROM&to=$TODAY&sep=tab")
	[ "$code" = 400 ] && grep -q "^rete console: sep=tab: use sep=comma, or sep=semicolon" "$DIR/bad.txt" ||
		fail "report.$ext, sep=tab: $code $(cat "$DIR/bad.txt")"
	code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/report.$ext?from=$TODAY&to=$FROM")
	[ "$code" = 400 ] && grep -q "^rete console: from=$TODAY to=$FROM is not a period: from is after to" "$DIR/bad.txt" ||
		fail "report.$ext, from after to: $code $(cat "$DIR/bad.txt")"
done
[ "$(head -c 2 "$DIR/rep-en.xlsx")" = PK ] || fail "report.xlsx in English is no workbook"
# the Italian CSV (headers with à, è) starts with a UTF-8 byte order mark:
# Excel opens a CSV without one in the PC's old code page ("Fascia d'etÃ ");
# the English one is ASCII and has none
[ "$(head -c 3 "$DIR/rep-it.csv" | od -An -tx1 | tr -d ' ')" = efbbbf ] ||
	fail "report.csv in Italian has no UTF-8 byte order mark: $(head -c 16 "$DIR/rep-it.csv" | od -An -c)"
[ "$(head -c 9 "$DIR/rep-en.csv")" = requester ] || fail "report.csv in English starts with: $(head -c 16 "$DIR/rep-en.csv" | od -An -c)"
head -n 1 "$DIR/rep-en.csv" | grep -q 'requester' || fail "report.csv in English: $(head -n 1 "$DIR/rep-en.csv")"
if command -v ssconvert >/dev/null; then
	ssconvert -T Gnumeric_stf:stf_csv "$DIR/rep-it.csv" "$DIR/rep-it.out.csv" >/dev/null 2>&1 ||
		fail "ssconvert cannot read the ';' CSV"
	# split into columns: the header's fourth column is Inviate, and the
	# adults' row has the story's referrals sent
	[ "$(head -n 1 "$DIR/rep-it.out.csv" | cut -d, -f4)" = Inviate ] ||
		fail "the ';' CSV does not split in gnumeric: $(head -n 2 "$DIR/rep-it.out.csv")"
	got=$(grep ',adult,' "$DIR/rep-it.out.csv" | cut -d, -f4)
	[ "$got" = "$want_sent" ] || fail "the ';' CSV's adults sent $got, want $want_sent"
	ssconvert -T Gnumeric_stf:stf_csv "$DIR/rep.xlsx" "$DIR/rep-x.csv" >/dev/null 2>&1 ||
		fail "ssconvert cannot read the XLSX"
	got=$(grep '^social.mantova,cpi.mantova,adult,' "$DIR/rep-x.csv" | cut -d, -f4)
	[ "$got" = "$want_sent" ] || fail "the XLSX's adults sent $got, want $want_sent"
	grep -q '^"Chi invia","Chi riceve"' "$DIR/rep-x.csv" || fail "the XLSX: no Italian headers"
else
	fail "ssconvert (gnumeric) is needed to check the downloads (scripts/setup installs it)"
fi
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/report?from=2026-02-30&to=$TODAY")
[ "$code" = 400 ] && grep -q "dates YYYY-MM-DD" "$DIR/bad.txt" || fail "a bad date: $code $(cat "$DIR/bad.txt")"

# Flussi: the matrix of who refers to whom, and how they ended, with a chart
# drawn by Chart.js served by the console itself (Debian's libjs-chart.js)
go "$URL/flussi?from=$FROM&to=$TODAY&lang=it"
flows_rendered() { [ "$(js 'return document.body.dataset.rows || ""')" = 1 ]; }
wait_for 30 flows_rendered || fail "the Flussi page did not render: $(js 'return document.body.innerText')"
got=$(js 'const c = document.querySelector("#matrix td[data-from=\"social.mantova\"][data-to=\"cpi.mantova\"]"); return c ? c.innerText : ""')
[ "$got" = "$want_sent" ] || fail "Flussi: social -> cpi $got, want $want_sent"
[ "$(js 'return window.Chart && Chart.getChart("flows-chart") ? "drawn" : "no"')" = drawn ] ||
	fail "Flussi: no chart (Chart.js not served?)"
[ "$(js 'return document.querySelector("script[src*=chart]").getAttribute("src")')" = /lib/chart.min.js ] ||
	fail "Chart.js is not the console's own"
curl -sf "$URL/lib/chart.min.js" | head -c 200 | grep -q "Chart.js v" || fail "/lib/chart.min.js is not Chart.js"
js 'return document.body.innerText' >"$DIR/text-flows.txt"
grep -q "Chi invia a chi" "$DIR/text-flows.txt" && grep -q "Come sono finite" "$DIR/text-flows.txt" ||
	fail "Flussi: $(cat "$DIR/text-flows.txt")"
shot flussi-it

# Andamento: per week, sent and the rest, and response-time percentiles
go "$URL/andamento?from=$FROM&to=$TODAY&step=week&lang=it"
trend_rendered() { [ -n "$(js 'return document.body.dataset.rows || ""')" ]; }
wait_for 30 trend_rendered || fail "the Andamento page did not render"
got=$(js 'let n = 0; for (const c of document.querySelectorAll("#trend td[data-kind=sent]")) n += Number(c.innerText); return String(n)')
[ "$got" = "$want_sent" ] || fail "Andamento: sent $got, want $want_sent"
[ "$(js 'return window.Chart && Chart.getChart("trend-chart") && Chart.getChart("times-chart") ? "drawn" : "no"')" = drawn ] ||
	fail "Andamento: no charts"
js 'return document.body.innerText' >"$DIR/text-trend.txt"
shot andamento-it
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/trend?from=$FROM&to=$TODAY&step=year")
[ "$code" = 400 ] && grep -q "step=week or step=month" "$DIR/bad.txt" || fail "step=year: $code"

# never a personal value of the story, in any page or answer
curl -s "$URL/api/overview" >"$DIR/api-overview.json"
curl -s "$URL/api/health" >"$DIR/api-health.json"
for f in dom-it.html text-it.txt text-en.txt text-salute.txt text-salute-en.txt dom-salute.html api-overview.json api-health.json \
	text-report.txt rep-it.csv rep-x.csv text-flows.txt text-trend.txt; do
	for secret in "Maria Rossi" "RSSMRA85M41E897X" "555 0101" "mn-2026-0999"; do
		grep -q "$secret" "$DIR/$f" && fail "$f holds a personal value: $secret"
	done
done

# Caso (the auditor's view; the broker gives coordinators the same read):
# the case's entries from the log, each with its inclusion proof checked by
# the console against a checkpoint signed by the pinned broker key
go "$URL/caso?case=mn-2026-0999&lang=it"
case_rendered() { [ -n "$(js 'return document.body.dataset.rows || ""')" ]; }
wait_for 60 case_rendered || fail "the Caso page did not render: $(js 'return document.body.innerText')"
nrows=$(js 'return document.body.dataset.rows')
[ "$nrows" -ge 10 ] || fail "Caso: only $nrows entries"
[ "$(js 'return String(document.querySelectorAll("#case-table td[data-proof=verified]").length)')" = "$nrows" ] ||
	fail "Caso: not every entry's proof verified: $(js 'return document.getElementById("case-table").innerText')"
js 'return document.body.innerText' >"$DIR/text-case.txt"
grep -q "verificata" "$DIR/text-case.txt" && grep -q "$want_label" "$DIR/text-case.txt" ||
	fail "Caso: $(cat "$DIR/text-case.txt")"
for secret in "Maria Rossi" "RSSMRA85M41E897X" "555 0101"; do
	grep -q "$secret" "$DIR/text-case.txt" && fail "Caso holds a personal value: $secret"
done
shot caso-it
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/case?case=a%20b")
[ "$code" = 400 ] && grep -q "needs a case id" "$DIR/bad.txt" || fail "case=a b: $code"
# a case id is at most 64 characters, an evidence id 128
long=$(printf 'x%.0s' $(seq 1 129))
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/case?case=${long:0:64}")
[ "$code" = 200 ] || fail "a case id of 64 characters: $code $(cat "$DIR/bad.txt")"
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/case?case=${long:0:65}")
[ "$code" = 400 ] && grep -q "needs a case id" "$DIR/bad.txt" || fail "a case id of 65 characters: $code"
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/evidence?sender=social.mantova&id=${long:0:128}")
[ "$code" = 404 ] || fail "an evidence id of 128 characters: $code $(cat "$DIR/bad.txt")"
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/evidence?sender=social.mantova&id=$long")
[ "$code" = 400 ] && grep -q "asked for by sender=" "$DIR/bad.txt" || fail "an evidence id of 129 characters: $code"

# the evidence bundle of the completed referral, by the link on the Caso page:
# it verifies offline with the broker's key and tells the story
href=$(js 'const r = [...document.querySelectorAll("#case-table tr[data-index]")].find(tr => tr.querySelector("abbr[title=\"r-done\"]") && tr.querySelector("a.evidence")); return r ? r.querySelector("a.evidence").getAttribute("href") : ""')
[ -n "$href" ] || fail "Caso: no evidence link for r-done: $(js 'return document.getElementById("case-table").innerHTML')"
[ "$(js 'return String(document.querySelectorAll("#case-table a.evidence").length)')" -ge 8 ] || fail "Caso: too few evidence links"
bundle() { curl -sf -D "$DIR/ev-h.txt" -o "$DIR/evidence.json" "$URL$href"; }
wait_for 30 bundle || fail "GET $href: $(curl -s "$URL$href")"
grep -qi '^content-disposition: attachment; filename="evidence-social.mantova-r-done.json"' "$DIR/ev-h.txt" ||
	fail "the bundle is not a download: $(cat "$DIR/ev-h.txt")"
"$BIN/rete" evidence verify "$DIR/evidence.json" --broker-key "$DIR/keys/broker.mantova.pub" --lang en --tsa-ca "$DIR/tsa/ca.pem" \
	>"$DIR/story.txt" 2>&1 || fail "the console's bundle does not verify: $(cat "$DIR/story.txt")"
grep -q "referral 'r-done' (case mn-2026-0999) sent by social.mantova to cpi.mantova" "$DIR/story.txt" &&
	grep -q "delivered to cpi.mantova" "$DIR/story.txt" && grep -q "acknowledged by cpi.mantova" "$DIR/story.txt" &&
	grep -q "timestamped by .*CN=rete console test TSA.* at .*(token verified against the CA given)" "$DIR/story.txt" &&
	grep -q "the evidence holds" "$DIR/story.txt" || fail "the story: $(cat "$DIR/story.txt")"
# the same bundle as `rete evidence export -c` writes, but for the checkpoint
# each chose: compare what both verify to
"$BIN/rete" evidence export social.mantova r-done -c "$DIR/coord.ini" -o "$DIR/evidence-cli.json" 2>"$DIR/export.out" ||
	fail "rete evidence export: $(cat "$DIR/export.out")"
[ "$(jq -c 'del(.checkpoint, .latest, .consistency, .messageProof, .directoryProof, .deliveryProof)' "$DIR/evidence.json")" = \
	"$(jq -c 'del(.checkpoint, .latest, .consistency, .messageProof, .directoryProof, .deliveryProof)' "$DIR/evidence-cli.json")" ] ||
	fail "the console's bundle holds other entries than rete evidence export's"
# (the parts decoded too: the signed message carries the personal part
# sealed for the recipient, never in clear)
for part in message directory delivery; do jq -r ".$part" "$DIR/evidence.json" | base64 -d; done >"$DIR/evidence.bin" ||
	fail "the bundle's parts do not decode"
grep -aq "employment-orientation" "$DIR/evidence.bin" || fail "the bundle's parts decoded to something else"
for secret in "Maria Rossi" "RSSMRA85M41E897X" "555 0101"; do
	grep -q "$secret" "$DIR/evidence.json" && fail "the bundle holds a personal value: $secret"
	grep -aq "$secret" "$DIR/evidence.bin" && fail "the bundle's parts hold a personal value: $secret"
done
# the link clicked in the browser downloads the same bundle (the page
# fetches it first, to say why when there is none)
mkdir -p "$DIR/downloads"
js "const r = [...document.querySelectorAll('#case-table a.evidence')].find(a => a.getAttribute('href') === '$href'); r.click(); return ''" >/dev/null
downloaded() { [ -s "$DIR/downloads/evidence-social.mantova-r-done.json" ]; }
wait_for 30 downloaded || fail "the evidence link clicked downloads nothing: $(ls "$DIR/downloads") $(js 'return document.getElementById("report-error").innerText')"
"$BIN/rete" evidence verify "$DIR/downloads/evidence-social.mantova-r-done.json" --broker-key "$DIR/keys/broker.mantova.pub" \
	--lang en >"$DIR/story2.txt" 2>&1 && grep -q "the evidence holds" "$DIR/story2.txt" ||
	fail "the bundle downloaded by the browser: $(cat "$DIR/story2.txt")"
# no bundle: the page says why in its language, and keeps the console's
# sentence for IT beside it (the link of r-done pointed at a message that
# has none)
js "const r = [...document.querySelectorAll('#case-table a.evidence')].find(a => a.getAttribute('href') === '$href'); r.setAttribute('href', '/api/evidence?sender=social.mantova&id=r-nothing'); r.click(); return ''" >/dev/null
said_why() { js 'return document.getElementById("report-error").innerText' | grep -q "Nessun fascicolo di prova"; }
wait_for 30 said_why || fail "no bundle: the reason is not shown: $(js 'return document.getElementById("report-error").innerText')"
js 'return document.getElementById("report-error").innerText' |
	grep -q "Dettaglio per il tecnico: no evidence bundle for message r-nothing of social.mantova" ||
	fail "no bundle: the detail for IT is not shown: $(js 'return document.getElementById("report-error").innerText')"
js "const r = [...document.querySelectorAll('#case-table a.evidence')].find(a => a.getAttribute('href').endsWith('id=r-nothing')); r.setAttribute('href', '$href'); return ''" >/dev/null
# bad input: an unknown message, a malformed id, none
code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/evidence?sender=social.mantova&id=r-nothing")
[ "$code" = 404 ] && grep -q "no evidence bundle for message r-nothing of social.mantova: " "$DIR/bad.txt" ||
	fail "unknown message: $code $(cat "$DIR/bad.txt")"
for q in "sender=social.mantova&id=a%20b" "sender=social.mantova" "sender=%22x&id=r-done"; do
	code=$(curl -s -o "$DIR/bad.txt" -w '%{http_code}' "$URL/api/evidence?$q")
	[ "$code" = 400 ] && grep -q "asked for by sender= (the sending party's id) and id=" "$DIR/bad.txt" ||
		fail "evidence?$q: $code $(cat "$DIR/bad.txt")"
done

# without a witness policy the cosignatures are checked with the directory's
# agencies' keys; a policy file that is not one is refused with a sentence
grep -v '^witnesses = ' "$DIR/coord.ini" | sed 's/^access_log = .*/access_log = console2-access.jsonl/' >"$DIR/coord-nopolicy.ini"
"$BIN/rete" console -c "$DIR/coord-nopolicy.ini" --listen 127.0.0.1:0 >"$DIR/console2.log" 2>&1 &
PIDS+=($!)
console2_up() { grep -q "serving coord.mantova's view at http://127.0.0.1:" "$DIR/console2.log"; }
wait_for 30 console2_up || fail "the second console did not start: $(cat "$DIR/console2.log")"
URL2=$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/console2.log" | head -n 1)
both_cosigned() {
	curl -sf "$URL2/api/health" >"$DIR/api-health2.json" &&
		[ "$(jq -r '[.witnesses.cosigners[].id] | sort | join(",")' "$DIR/api-health2.json")" = cpi.mantova,social.mantova ]
}
wait_for 30 both_cosigned || fail "no policy: $(cat "$DIR/api-health2.json")"
[ "$(jq -r '.witnesses.policy // "none"' "$DIR/api-health2.json")" = none ] &&
	[ "$(jq -r '.timestamp.stamped' "$DIR/api-health2.json")" = true ] ||
	fail "no policy: $(cat "$DIR/api-health2.json")"

# a broker that asks no TSA: its console says "no TSA configured", in both
# languages (a second broker, the same keys and directory, no agents)
sed -e "s#$DIR/broker/#$DIR/broker2/#g" -e '/^tsa_/d' "$DIR/broker/broker.ini" >"$DIR/broker2/broker.ini"
sed -e "s#$DIR/broker/#$DIR/broker2/#g" -e 's/^access_log = .*/access_log = console3-access.jsonl/' \
	"$DIR/coord-nopolicy.ini" >"$DIR/coord-notsa.ini"
"$BIN/rete-broker" -c "$DIR/broker2/broker.ini" --init >"$DIR/broker2.log" 2>&1 &
PIDS+=($!)
wait_for 20 "$BIN/rete" monitor -c "$DIR/coord-notsa.ini" --once || fail "the second broker did not answer"
"$BIN/rete" console -c "$DIR/coord-notsa.ini" --listen 127.0.0.1:0 >"$DIR/console3.log" 2>&1 &
PIDS+=($!)
console3_up() { grep -q "serving coord.mantova's view at http://127.0.0.1:" "$DIR/console3.log"; }
wait_for 30 console3_up || fail "the third console did not start: $(cat "$DIR/console3.log")"
URL3=$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/console3.log" | head -n 1)
go "$URL3/salute?lang=it"
no_tsa_it() { js 'return document.body.innerText' | grep -q "nessuna TSA configurata"; }
wait_for 30 no_tsa_it || fail "no TSA, Italian: $(js 'return document.body.innerText')"
js 'return document.body.innerText' | grep -q "tsa_url is not set" || fail "no TSA: the broker's sentence is not shown"
shot salute-notsa-it
go "$URL3/salute?lang=en"
no_tsa_en() { js 'return document.body.innerText' | grep -q "no TSA configured"; }
wait_for 30 no_tsa_en || fail "no TSA, English: $(js 'return document.body.innerText')"
printf 'witness social.mantova not-a-key\n' >"$DIR/bad.policy"
sed 's/^witnesses = .*/witnesses = bad.policy/' "$DIR/coord.ini" >"$DIR/coord-badpolicy.ini"
"$BIN/rete" console -c "$DIR/coord-badpolicy.ini" --listen 127.0.0.1:0 >"$DIR/badpolicy.out" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "\[console\] witnesses: .*bad.policy" "$DIR/badpolicy.out" ||
	fail "a bad witness policy: exit $rc: $(cat "$DIR/badpolicy.out")"

# every page read is in the access record
for what in '"what":"/"' '"what":"/salute"' '"what":"overview"' '"what":"health"' '"what":"events"' \
	'"what":"/rapporto"' '"what":"report csv ' '"what":"report xlsx ' '"what":"case mn-2026-0999"' \
	'"what":"evidence social.mantova r-done"'; do
	grep -q "$what" "$DIR/console-access.jsonl" || fail "access record lacks $what: $(cat "$DIR/console-access.jsonl")"
done
grep -q '"program":"rete console"' "$DIR/console-access.jsonl" || fail "access record: program"

# the console stops on SIGTERM, exit 0
kill -TERM $CONSOLE_PID
wait $CONSOLE_PID
rc=$?
[ $rc -eq 0 ] || fail "the console exited $rc on SIGTERM"
echo "ok: the console in a real browser (screenshots in $SHOTS)"
exit 0
