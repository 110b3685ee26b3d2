#!/bin/bash
# test_console_roles.sh — [console] steering_group never fails open
# (rev-hostile s13 #1): the accounts it names see the network's totals,
# not a case's history nor a message's evidence, however the list is
# written:
#   - wrapped over indented continuation lines (as broker.ini documents,
#     and as the sentence for a line over 199 characters asks), every
#     line's names are of the steering group, not only the last line's;
#   - the key given twice is refused, by `rete --check-config` and at the
#     start, not the last one taken silently;
#   - a name with no account (a typo: sarra for sara) is refused the same
#     way, not taken while sara reads as a coordinator.
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-roles

make_keys broker.mantova coord.mantova
coord_only_ini | broker_ini
coord_ini <<EOT

[console]
users = console-users
access_log = console-access.jsonl
EOT
cp "$DIR/coord.ini" "$DIR/base.ini"
for u in alice sara marco; do
	printf '%s has a long password\n' "$u" | "$BIN/rete" console passwd "$u" -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
		fail "passwd $u: $(cat "$DIR/p.out")"
done
start_broker

# config NAME < LINES: DIR/NAME.ini, base.ini with LINES after it ([console])
config() {
	{
		cat "$DIR/base.ini"
		cat
	} >"$DIR/$1.ini"
}

stop_console() {
	kill "$CONSOLE_PID" 2>/dev/null
	wait "$CONSOLE_PID" 2>/dev/null
}

# case_code USER: what /api/case answers USER (signed in)
case_code() {
	local t
	t=$(curl -s -D - -o /dev/null --data-urlencode "user=$1" \
		--data-urlencode "password=$1 has a long password" "$URL/login" |
		grep -oi 'rete_session=[0-9a-f]\{64\}' | head -n 1 | cut -d= -f2)
	[ -n "$t" ] || {
		echo "no-session"
		return
	}
	curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$t" "$URL/api/case?case=mn-2026-0001"
}

# --- wrapped over a continuation line: both lines' names are of the group
printf 'steering_group = sara,\n\tmarco\n' | config wrapped
what="check-config, a wrapped list"
run "$BIN/rete" --check-config -c "$DIR/wrapped.ini"
expect 0 "fine"
serve_console wrapped
for u in sara marco; do
	code=$(case_code $u)
	[ "$code" = 403 ] || bad "wrapped list: $u (steering group, line $([ $u = sara ] && echo 1 || echo 2)) reads a case: $code"
done
code=$(case_code alice)
[ "$code" = 200 ] || bad "wrapped list: alice (coordinator) cannot read a case: $code"
stop_console

# --- a list of 22 names, too long for one line, split over three
{
	printf 'steering_group = sara, anna01, anna02, anna03, anna04, anna05, anna06, anna07,\n'
	printf '    anna08, anna09, anna10, anna11, anna12, anna13, anna14, anna15,\n'
	printf '    anna16, anna17, anna18, anna19, marco\n'
} | config long
for i in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19; do
	printf 'anna%s has a long password\n' "$i" |
		"$BIN/rete" console passwd "anna$i" -c "$DIR/long.ini" >"$DIR/p.out" 2>&1 || fail "passwd anna$i"
done
what="check-config, a long list on three lines"
run "$BIN/rete" --check-config -c "$DIR/long.ini"
expect 0 "fine"
serve_console long
code=$(case_code marco)
[ "$code" = 403 ] || bad "a list on three lines: marco (its last line) reads a case: $code"
code=$(case_code anna08)
[ "$code" = 403 ] || bad "a list on three lines: anna08 (its second line) reads a case: $code"
stop_console

# refused NAME WHAT CHECK-TEXT START-TEXT: DIR/NAME.ini refused by
# `rete --check-config` (saying CHECK-TEXT) and at the start (START-TEXT,
# never serving)
refused() {
	what="check-config, $2"
	run "$BIN/rete" --check-config -c "$DIR/$1.ini"
	expect 2 "$3"
	what="the start, $2"
	run timeout 20 "$BIN/rete" console -c "$DIR/$1.ini" --listen 127.0.0.1:0
	expect 2 "$4"
	lacks "serving"
}

# --- the key given twice: refused, where the check and the start say so
printf 'steering_group = sara\nsteering_group = marco\n' | config twice
refused twice "steering_group twice" \
	"twice.ini:$(($(wc -l <"$DIR/base.ini") + 2)): [console] steering_group: given twice" \
	"steering_group: given twice"

# --- a name that is no account: refused (sara would read as a coordinator)
printf 'steering_group = sarra, marco\n' | config typo
refused typo "a name with no account" "[console] steering_group: 'sarra' has no account in" \
	"'sarra' has no account"
# a person who left (her account removed, her name still in the list): the
# sentence says to remove the name too (rev-console s13 #4), not only to
# make the account
what="check-config, a name with no account"
run "$BIN/rete" --check-config -c "$DIR/typo.ini"
expect 2 "or, if the person no longer has an account, remove the name from steering_group"

# --- a continuation line indented with a vertical tab or a form feed is a
# continuation (as inih reads it), not a key "given twice" (rev-console s13 #5)
for ch in '\v' '\f'; do
	printf "steering_group = sara,\n${ch}marco\n" | config ws
	what="check-config, a list continued after $ch"
	run "$BIN/rete" --check-config -c "$DIR/ws.ini"
	expect 0 "fine"
	lacks "given twice"
done

# --- `rete console passwd` says whether the account is of the steering
# group or sees every case, in English and Italian (rev-console s13 #4)
printf 'steering_group = sara\n' | config passwd
what="passwd, an account of the steering group"
run sh -c "printf 'sara has a long password\n' | '$BIN/rete' console passwd sara -c '$DIR/passwd.ini'"
expect 0 "sara is of the steering group"
expect 0 "fa parte della cabina di regia"
what="passwd, a new account not in the steering group"
run sh -c "printf 'newbie has a long password\n' | '$BIN/rete' console passwd newbie -c '$DIR/passwd.ini'"
expect 0 "newbie is not in [console] steering_group: the account sees every case"
expect 0 "non fa parte della cabina di regia"
what="passwd, no steering group"
run sh -c "printf 'newbie has a long password\n' | '$BIN/rete' console passwd newbie -c '$DIR/base.ini'"
expect 0 "password set"
lacks "steering_group"

# --- another [console] key does not take a continuation line
printf 'steering_group = sara\nlisten = 127.0.0.1:8480\n  127.0.0.1:8481\n' | config listen2
what="check-config, a continuation of listen"
run "$BIN/rete" --check-config -c "$DIR/listen2.ini"
expect 2 "[console] listen: a value on one line only"

[ "$FAILS" = 0 ] || exit 1
echo "ok: the steering group, wrapped, twice or mistyped, never fails open"
exit 0
