#!/bin/bash
# test_console_signin.sh — signing in to the web console as a person does,
# and what its pages say when something is refused,
# in a real browser (headless Chromium over WebDriver, as
# test_console_browser.sh), against a console with accounts and TLS (a
# certificate made here) attached to a real broker:
#   - a wrong password brings the sign-in page back saying so (in Italian
#     and English, as the page is), not the same empty form;
#   - a user name in capitals, which no account has, is told as such, on
#     the sign-in page, not as a bare text page in English;
#   - a wrong password again and again is throttled: the sign-in page says
#     how long to wait, in both languages (429, Retry-After);
#   - the right password opens the page asked (its query kept); the session's cookie ends
#     with the browser, and the header's "Esci" signs out;
#   - a session that ends while a page is open (a logout from another tab,
#     the 30 minutes idle, the account deleted) brings the page to the
#     sign-in page, instead of a red dot that says "retrying" for ever;
#   - a refused request is said in the page's language first (a period of
#     Andamento too long for weeks), and the download link of an evidence
#     bundle not ready yet says why, instead of a failed download;
#   - a page whose live stream was refused (streams_per_address) opens it
#     again by itself once a place is free, as its red dot's "riprovo" says.
# Waits poll with deadlines (no sleep as synchronisation); every process
# started is stopped, the folder removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-signin

. "$(dirname "$0")/lib_browser.sh"
browser_need

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
# checkpoints only every hour (after the one of the start): the story's
# referral stays beyond the latest checkpoint
{ printf 'checkpoint_interval = 1h\n'; agencies_ini "Servizi sociali di Mantova"; } | broker_ini
coord_ini <<EOT

[console]
users = console-users
steering_group = sara
streams_per_address = 1
tls_cert = console.crt
tls_key = console.key
EOT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$DIR/console.key" -out "$DIR/console.crt" >/dev/null 2>&1 || fail "openssl req"
chmod 600 "$DIR/console.key"
printf 'una password lunga\n' | "$BIN/rete" console passwd anna -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
	fail "passwd anna: $(cat "$DIR/p.out")"
printf 'sara reads the totals\n' | "$BIN/rete" console passwd sara -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
	fail "passwd sara: $(cat "$DIR/p.out")"
start_broker

"$BIN/rete" console -c "$DIR/coord.ini" --listen 127.0.0.1:0 >"$DIR/console.log" 2>&1 &
PIDS+=($!)
up() { grep -q "serving coord.mantova's view at https://127.0.0.1:[0-9]*/ (sign-in required)" "$DIR/console.log"; }
wait_for 30 up || fail "the console did not start: $(cat "$DIR/console.log")"
URL=$(grep -o 'https://127.0.0.1:[0-9]*' "$DIR/console.log" | head -n 1)
C=(curl -s --cacert "$DIR/console.crt")

# --- the browser -------------------------------------------------------------
browser_start
text() { js 'return document.body ? document.body.innerText : ""'; }
on_login() { [ "$(js 'return location.pathname + "|" + (document.querySelector("form[action=\"/login\"]") ? "form" : "")')" = "/login|form" ]; }
sign_in() { # USER PASSWORD: typed into the sign-in page's form and sent
	wait_for 20 on_login || fail "not on the sign-in page: $(js 'return location.href') $(text)"
	js 'window.__before = "yes"; return ""' >/dev/null
	js "document.querySelector('input[name=user]').value = $(jq -nc --arg v "$1" '$v');
	    document.querySelector('input[name=password]').value = $(jq -nc --arg v "$2" '$v');
	    document.querySelector('form[action=\"/login\"] button').click(); return ''" >/dev/null
	left() { [ "$(js 'return window.__before || ""')" != yes ]; }
	wait_for 20 left || fail "the sign-in form was not sent"
}

# a page without a session: the sign-in page
go "$URL/panoramica"
wait_for 20 on_login || fail "no sign-in page: $(js 'return location.href')"

# a wrong password: the sign-in page again, saying so
sign_in anna 'non è questa'
wait_for 20 on_login || fail "after a wrong password: $(js 'return location.href') $(text)"
text >"$DIR/t1.txt"
grep -q "Utente o password errati" "$DIR/t1.txt" && grep -q "Wrong user or password" "$DIR/t1.txt" ||
	fail "a wrong password is not said: $(cat "$DIR/t1.txt")"

# a user name no account can have (capitals): said on the sign-in page
sign_in Anna 'una password lunga'
text >"$DIR/t2.txt"
on_login && grep -q "lettere minuscole" "$DIR/t2.txt" && grep -q "lower-case letters" "$DIR/t2.txt" ||
	fail "a user name in capitals: $(js 'return location.href') $(cat "$DIR/t2.txt")"

# wrong passwords in a row: from the fourth the sign-in is throttled, and the
# page says how long to wait (each failure doubles the wait, so one of the
# next tries meets it however slow this machine is)
throttled() {
	sign_in anna 'sbagliata'
	text >"$DIR/t3.txt"
	grep -q "Troppi accessi non riusciti" "$DIR/t3.txt"
}
wait_for 60 throttled || fail "a throttled sign-in: $(js 'return location.href') $(cat "$DIR/t3.txt")"
grep -q "too many failed logins" "$DIR/t3.txt" && grep -Eq "riprova tra [0-9]+ s" "$DIR/t3.txt" ||
	fail "a throttled sign-in: $(cat "$DIR/t3.txt")"
# its answer: 429, Retry-After, the page (from an address of its own)
throttled_curl() {
	code=$("${C[@]}" --interface 127.0.0.3 -D "$DIR/h3.txt" -o "$DIR/b3.html" -w '%{http_code}' \
		--data 'user=carl&password=guess' "$URL/login")
	[ "$code" = 429 ]
}
wait_for 60 throttled_curl || fail "no 429 for carl"
grep -qi '^retry-after: [0-9]' "$DIR/h3.txt" && grep -qi '^content-type: text/html' "$DIR/h3.txt" &&
	grep -q "too many failed logins" "$DIR/b3.html" && grep -q 'form method="post" action="/login"' "$DIR/b3.html" ||
	fail "a throttled sign-in's answer: $(cat "$DIR/h3.txt" "$DIR/b3.html")"

# (the throttle's wait is at most a few seconds here: the right password
# gets through once it is over)
signed_in() {
	go "$URL/panoramica"
	wait_for 5 on_login || return 0
	sign_in anna 'una password lunga'
	[ "$(js 'return location.pathname')" = /panoramica ]
}
wait_for 60 signed_in || fail "the right password did not sign in: $(text)"
rendered() { [ -n "$(js 'return document.body.dataset.version || ""')" ]; }
wait_for 30 rendered || fail "the Panoramica never rendered after the sign-in: $(text)"
live() { [ "$(js 'return document.getElementById("live").dataset.state')" = on ]; }
wait_for 30 live || fail "the Panoramica is not live"

# the session's cookie ends with the browser (no expiry of its own: the
# next person at a shared PC who opens the console after it was closed
# must sign in), and the header has a sign-out link
wd GET /cookie/rete_session >"$DIR/cookie.json"
TOKEN=$(jq -r '.value // empty' "$DIR/cookie.json")
[ -n "$TOKEN" ] || fail "no session cookie in the browser"
jq -e 'has("expiry") | not' "$DIR/cookie.json" >/dev/null ||
	fail "the session cookie outlives the browser: $(jq -c 'del(.value)' "$DIR/cookie.json")"
[ "$(js 'const a = document.querySelector("header a[href=\"/logout\"]"); return a ? a.innerText : ""')" = Esci ] ||
	fail "no sign-out link in the header: $(js 'return document.querySelector("header").innerText')"

# the session ends while the page is open (a logout from elsewhere): the
# page goes to the sign-in page by itself
"${C[@]}" -o /dev/null -H "Cookie: rete_session=$TOKEN" "$URL/logout"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$TOKEN" "$URL/api/overview")
[ "$code" = 401 ] || fail "the session lives after the logout: $code"
wait_for 40 on_login || fail "the open page stayed after its session ended: $(js 'return location.href') $(text)"
text >"$DIR/t4.txt"
grep -q "La sessione è terminata: accedi di nuovo" "$DIR/t4.txt" || fail "the sign-in page does not say why: $(cat "$DIR/t4.txt")"
# the stream itself says why it refuses: 401 and the sentence
code=$("${C[@]}" -o "$DIR/ev.txt" -w '%{http_code}' -H "Cookie: rete_session=$TOKEN" "$URL/api/events")
[ "$code" = 401 ] && grep -q "sign in first" "$DIR/ev.txt" || fail "the stream without a session: $code $(cat "$DIR/ev.txt")"

# --- what the pages say when something is refused -------------------------------
# signed in again; a referral of social.mantova to cpi.mantova, whose agent
# is not running: logged, not delivered, so it has no evidence bundle yet
wait_for 60 signed_in || fail "no sign-in after the session ended: $(text)"
agent_ini social.mantova
start_agents social.mantova
printf '%s\n' '{"id": "r-waiting", "operator": {"staffId": "as-1", "role": "social-worker"},
 "recipient": "cpi.mantova", "caseId": "mn-2026-0500",
 "referral": {"service": "employment-orientation", "priority": "routine", "reasonCode": "long-term-unemployment",
   "consent": {"basis": "consent", "givenAt": "2026-11-20T09:30:00Z"}, "ageBand": "adult"},
 "private": {"person": {"name": "Maria Rossi"}}}' >"$DIR/r.json"
"$BIN/rete" send -c "$DIR/agents/social.mantova/agent.ini" "$DIR/r.json" --wait 30 >"$DIR/send.out" 2>&1 ||
	fail "the referral was not accepted: $(cat "$DIR/send.out")"
# Caso: its download link, clicked, says why there is no bundle (a browser
# told 404 by a download link says only "failed")
go "$URL/caso?case=mn-2026-0500&lang=it"
case_rendered() { [ "$(js 'return document.body.dataset.rows || ""')" = 1 ]; }
wait_for 30 case_rendered || fail "the Caso page did not render: $(text)"
# an entry beyond the broker's latest checkpoint has no proof yet: it is
# said to wait for the next checkpoint, not "NOT verified" in red (an
# auditor's alarm), and the summary does not say every entry verified
[ "$(js 'return document.querySelector("#case-table tr[data-index] td[data-proof]").dataset.proof')" = pending ] ||
	fail "an entry beyond the latest checkpoint: $(js 'return document.getElementById("case-table").innerText')"
js 'return document.getElementById("case-summary").innerText + "\n" + document.getElementById("case-table").innerText' >"$DIR/t6.txt"
grep -q "in attesa del prossimo checkpoint" "$DIR/t6.txt" && ! grep -q "ognuna verificata" "$DIR/t6.txt" &&
	grep -q "Voci: 1; verificate contro il checkpoint firmato dal broker ([0-9]* voci): 0; in attesa del prossimo checkpoint: 1" "$DIR/t6.txt" || fail "the Caso summary for an entry beyond the checkpoint: $(cat "$DIR/t6.txt")"
js 'document.querySelector("#case-table a.evidence").click(); return ""' >/dev/null
why_said() { js 'return document.getElementById("report-error").innerText' | grep -q "Il fascicolo di prova non è disponibile"; }
wait_for 30 why_said || fail "a bundle not ready: nothing said: $(text)"
js 'return document.getElementById("report-error").innerText' >"$DIR/t5.txt"
grep -q "il destinatario non ha ancora ricevuto il messaggio" "$DIR/t5.txt" &&
	grep -q "Nessun fascicolo di prova per questo messaggio, per ora. Dettaglio per il tecnico: no evidence bundle" "$DIR/t5.txt" ||
	fail "a bundle not ready: $(cat "$DIR/t5.txt")"
# Andamento: a period the console refuses is said in Italian, next to the
# form: the console's problem (X-Rete-Problem: period-long) in the
# catalogue's words first, then its English sentence for IT
go "$URL/andamento?from=2020-01-01&to=2026-01-31&step=week&lang=it"
trend_said() { js 'return document.getElementById("report-error").innerText' | grep -q "La richiesta non è valida"; }
wait_for 30 trend_said || fail "a refused period: $(text)"
js 'return document.getElementById("report-error").innerText' | grep -q "Il periodo ha troppe colonne per questa scala.*Dettaglio per il tecnico: " ||
	fail "a refused period: $(js 'return document.getElementById("report-error").innerText')"
# the sign-out link: to the sign-in page, the session ended
wait_for 60 signed_in || fail "no sign-in before the sign-out: $(text)"
wait_for 30 rendered || fail "the Panoramica never rendered: $(text)"
TOKEN=$(wd GET /cookie/rete_session | jq -r '.value // empty')
js 'document.querySelector("header a[href=\"/logout\"]").click(); return ""' >/dev/null
wait_for 20 on_login || fail "the sign-out link did not lead to the sign-in page: $(js 'return location.href') $(text)"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$TOKEN" "$URL/api/overview")
[ "$code" = 401 ] || fail "the session lives after the sign-out link: $code"
# a page asked without a session (a link a colleague sent) is the page
# the sign-in leads to, its query kept
at_case() {
	go "$URL/caso?case=mn-2026-0500&lang=it"
	wait_for 5 on_login || return 1
	sign_in anna 'una password lunga'
	[ "$(js 'return location.pathname + location.search')" = "/caso?case=mn-2026-0500&lang=it" ]
}
wait_for 60 at_case || fail "the sign-in did not lead to the page asked: $(js 'return location.href')"
wait_for 30 case_rendered || fail "the Caso page asked before the sign-in did not render: $(text)"
# only a path of the console: another site's address is not followed
code=$("${C[@]}" -o "$DIR/n.html" -w '%{http_code}' "$URL/login?next=//evil.example/x")
[ "$code" = 200 ] && ! grep -q "evil.example" "$DIR/n.html" || fail "next=//evil.example: $code $(grep -i evil "$DIR/n.html")"

# a second page from the same address, past streams_per_address (1): its
# stream is refused (429), its dot red; once the first page is closed, the
# second opens its stream again by itself and is live (the browser does not
# reconnect after a refusal: the page does)
go "$URL/panoramica"
wait_for 30 live || fail "the Panoramica is not live"
FIRST=$(wd GET /window | jq -r .)
SECOND=$(wd POST /window/new '{"type": "tab"}' | jq -r .handle)
wd POST /window "$(jq -nc --arg h "$SECOND" '{handle: $h}')" >/dev/null
go "$URL/panoramica"
wait_for 30 rendered || fail "the second page never rendered: $(text)"
off() { [ "$(js 'return document.getElementById("live").dataset.state')" = off ]; }
wait_for 30 off || fail "the second page's stream was not refused: $(js 'return document.getElementById("live").dataset.state')"
wd POST /window "$(jq -nc --arg h "$FIRST" '{handle: $h}')" >/dev/null
wd DELETE /window >/dev/null
wd POST /window "$(jq -nc --arg h "$SECOND" '{handle: $h}')" >/dev/null
wait_for 60 live || fail "the second page stayed without live updates after the first closed: $(text)"
# the steering group sees how many referrals are overdue, not which: an
# emergency referral to cpi.mantova (its agent is not running) past its 3 s
# limit is a row of anna's (the coordinator's) Panoramica, a number of
# sara's ("< 3": one, as small counts are shown to her), whose overview
# carries no row of it (docs/coordinator.md)
sed -e 's/"r-waiting"/"r-late"/' -e 's/"routine"/"emergency"/' -e 's/mn-2026-0500/mn-2026-0501/' \
	"$DIR/r.json" >"$DIR/r-late.json"
"$BIN/rete" send -c "$DIR/agents/social.mantova/agent.ini" "$DIR/r-late.json" --wait 30 >"$DIR/send.out" 2>&1 ||
	fail "the emergency referral was not accepted: $(cat "$DIR/send.out")"
cookie_of() { # USER PASSWORD: a session's token, signed in with curl
	"${C[@]}" -D - -o /dev/null --data-urlencode "user=$1" --data-urlencode "password=$2" "$URL/login" |
		grep -oi 'rete_session=[0-9a-f]\{64\}' | head -n 1 | cut -d= -f2
}
TA=$(cookie_of anna 'una password lunga')
TS=$(cookie_of sara 'sara reads the totals')
[ -n "$TA" ] && [ -n "$TS" ] || fail "anna or sara cannot sign in with curl"
late_row() {
	"${C[@]}" -H "Cookie: rete_session=$TA" "$URL/api/overview" >"$DIR/ov-anna.json" &&
		[ "$(jq -r '[.monitor.overdue[].referralId] | join(",")' "$DIR/ov-anna.json")" = r-late ]
}
wait_for 60 late_row || fail "r-late is not overdue in anna's overview: $(cat "$DIR/ov-anna.json")"
"${C[@]}" -H "Cookie: rete_session=$TS" "$URL/api/overview" >"$DIR/ov-sara.json"
[ "$(jq -r '.monitor.overdue | length' "$DIR/ov-sara.json")" = 0 ] &&
	[ "$(jq -r '.monitor.overdueCount' "$DIR/ov-sara.json")" = "< 3" ] && ! grep -q r-late "$DIR/ov-sara.json" ||
	fail "the steering group's overview lists the overdue referral: $(jq -c .monitor.overdue "$DIR/ov-sara.json") count $(jq -c .monitor.overdueCount "$DIR/ov-sara.json")"
# a Caso page open when its session is the steering group's (the account
# moved to steering_group, or another user signed in on that PC): the
# page says first that the account may not see it, not that the console
# failed
go "$URL/caso?case=mn-2026-0500&lang=it"
wait_for 30 case_rendered || fail "the Caso page (anna) did not render: $(text)"
wd POST /cookie "$(jq -nc --arg v "$TS" '{cookie: {name: "rete_session", value: $v, path: "/", secure: true, httpOnly: true}}')" >/dev/null
js 'document.querySelector("#case-form button, #case-form input[type=submit]") ? document.querySelector("#case-form button, #case-form input[type=submit]").click() : document.getElementById("case-form").requestSubmit(); return ""' >/dev/null
denied() { js 'return document.getElementById("report-error").innerText' | grep -q "gruppo di indirizzo"; }
wait_for 30 denied || fail "the steering group on Caso: nothing said: $(js 'return document.getElementById("report-error").innerText')"
said=$(js 'return document.getElementById("report-error").innerText')
grep -q "^Questo account non può vedere questa parte della console" <<<"$said" &&
	! grep -q "La console non ha potuto rispondere" <<<"$said" ||
	fail "the steering group on Caso: $said"
echo "ok: signing in to the console in a real browser"
exit 0
