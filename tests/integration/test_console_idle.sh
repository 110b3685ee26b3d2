#!/bin/bash
# test_console_idle.sh — an open page does not keep its session alive
# (rev-hostile s13 #4): the page reloads its data at every update of its
# live stream (for the steering group, every health refresh: 5 s), and each
# of those reads renewed the session, so the 30 minutes' idle sign-out of a
# shared PC never came, and the access record had a line every 5 s. Now a
# read the page makes by itself (X-Rete-Auto: 1) neither renews the session
# nor writes a line each time (the first after a person's action only);
# a person's read does both.
#   1. with curl, the console's clock moved by libfaketime: reads with
#      X-Rete-Auto end with the session 30 minutes after the sign-in,
#      a person's reads keep another session alive;
#   2. in a real browser (headless Chromium), sara's Panoramica left open:
#      its refreshes write one line, not one each; with the console's clock
#      at +20 min (the page refreshing) then +31 min, the page goes to the
#      sign-in page by itself, saying the session ended.
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-idle

. "$(dirname "$0")/lib_browser.sh"
browser_need
need_faketime

make_keys broker.mantova coord.mantova
coord_only_ini | broker_ini
coord_ini <<EOT

[console]
users = console-users
steering_group = sara
EOT
for u in sara anna; do
	printf '%s has a long password\n' "$u" | "$BIN/rete" console passwd "$u" -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
		fail "passwd $u: $(cat "$DIR/p.out")"
done
start_broker

console_faketime
serve_console
A="$DIR/console-access.jsonl"

token() { # USER: a session's token, signed in with curl
	curl -s -D - -o /dev/null --data-urlencode "user=$1" --data-urlencode "password=$1 has a long password" \
		"$URL/login" | grep -oi 'rete_session=[0-9a-f]\{64\}' | head -n 1 | cut -d= -f2
}
auto() { # TOKEN: the code of a read the page makes by itself
	curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$1" -H 'X-Rete-Auto: 1' "$URL/api/overview"
}
person() { # TOKEN: the code of a person's read
	curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$1" "$URL/api/overview"
}

# --- 1. the server, with curl
TA=$(token anna) # reads by itself only
TP=$(token anna) # a person reads
[ -n "$TA" ] && [ -n "$TP" ] || fail "anna cannot sign in"
before=$(grep -c '"who":"anna".*"what":"overview' "$A")
for i in 1 2 3 4 5 6; do
	code=$(auto "$TA")
	[ "$code" = 200 ] || fail "a page's own read $i: $code"
done
n=$(($(grep -c '"who":"anna".*"what":"overview' "$A") - before))
[ "$n" = 1 ] || bad "six reads a page made by itself wrote $n lines in the access record, not 1"
grep -q '"who":"anna".*"what":"overview, kept up to date by the open page"' "$A" ||
	bad "the page's own reads are not in the access record: $(tail -n 3 "$A")"
set_clock +1200 # 20 minutes on
[ "$(auto "$TA")" = 200 ] || bad "a page's own read at +20 min: ended already"
[ "$(person "$TP")" = 200 ] || bad "a person's read at +20 min: ended already"
set_clock +1860 # 31 minutes after the sign-in, 11 after the last reads
code=$(auto "$TA")
[ "$code" = 401 ] || bad "a session used only by its page's own reads lives 31 min after the sign-in: $code"
code=$(person "$TP")
[ "$code" = 200 ] || bad "a session a person read at +20 min ended at +31 min: $code"
# the live stream, opened, does not renew either
set_clock +0

# --- 2. the browser: sara's Panoramica left open
browser_start
text() { js 'return document.body ? document.body.innerText : ""'; }
on_login() { [ "$(js 'return location.pathname + "|" + (document.querySelector("form[action=\"/login\"]") ? "form" : "")')" = "/login|form" ]; }
go "$URL/panoramica"
wait_for 20 on_login || fail "no sign-in page: $(js 'return location.href')"
js "document.querySelector('input[name=user]').value = 'sara';
    document.querySelector('input[name=password]').value = 'sara has a long password';
    document.querySelector('form[action=\"/login\"] button').click(); return ''" >/dev/null
at_page() { [ "$(js 'return location.pathname')" = /panoramica ] && [ -n "$(js 'return document.body.dataset.version || ""')" ]; }
wait_for 30 at_page || fail "sara's Panoramica did not open: $(js 'return location.href') $(text)"
sara0=$(grep -c '"who":"sara".*"what":"overview' "$A")
# three refreshes (the steering group's page: one at each health refresh)
for i in 1 2 3; do
	v=$(js 'return document.body.dataset.version || ""')
	moved() { [ "$(js 'return document.body.dataset.version || ""')" != "$v" ]; }
	wait_for 30 moved || fail "the open page did not refresh ($i): $(text)"
done
sara=$(grep -c '"who":"sara".*"what":"overview' "$A")
[ "$sara" -le 2 ] || bad "sara's open page wrote $sara lines of overview in 3 refreshes: $(grep '"who":"sara"' "$A" | tail -n 5)"
# the page refreshes at +20 min, and at +31 min the session is over: the
# page goes to the sign-in page by itself
set_clock +1200
v=$(js 'return document.body.dataset.version || ""')
moved() { [ "$(js 'return document.body.dataset.version || ""')" != "$v" ]; }
wait_for 30 moved || fail "the open page did not refresh at +20 min: $(text)"
set_clock +1860
wait_for 60 on_login || bad "sara's open page, untouched, still shows after 31 min: $(js 'return location.href')"
text | grep -q "La sessione è terminata" || bad "the sign-in page does not say the session ended: $(text)"

[ "$FAILS" = 0 ] || exit 1
echo "ok: an open page does not keep its session alive nor fill the access record"
exit 0
