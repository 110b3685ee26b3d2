#!/bin/bash
# test_console_throttle.sh — password guessing spread over many addresses
# (rev-console s13 #2), with the console's clock moved by libfaketime so
# that hours of waiting take seconds:
#   1. one attacker guessing alice's password from as many addresses as
#      it likes, each time the throttle lets it, for one hour: the user-wide
#      pause grew to 30 s at most, so ~130 guesses were checked an hour
#      (~3,200 a day). Now a handful: the pause grows to minutes, the log
#      says so once, and alice at her own PC still signs in at once.
#   2. a spray, one guess per name from each of many addresses (no
#      account needed): none was ever throttled. Now a console-wide brake
#      holds every sign-in from an address not known for its user, and
#      the log says so; bob and alice at their own PCs still sign in.
#   3. the same after a restart of the console: the addresses they signed
#      in from are recalled from the access record (before, they were in
#      memory only, and the brake held everyone).
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-throttle
need_faketime

console_users alice bob
start_broker
console_faketime
OFF=0
later() { # SECONDS: the console's clock moves on
	OFF=$((OFF + $1))
	set_clock "+$OFF"
}
serve_console

login() { # USER ADDRESS PASSWORD: the answer's code (page DIR/l.txt, headers DIR/l.h)
	curl -s --interface "$2" -D "$DIR/l.h" -o "$DIR/l.txt" -w '%{http_code}' --data-urlencode "user=$1" \
		--data-urlencode "password=$3" "$URL/login"
}
retry_after() { grep -i '^Retry-After:' "$DIR/l.h" | tr -dc 0-9; }
attacker() { # N: the Nth address of an attacker with 1000 of them
	echo "127.0.$((130 + $1 % 1000 / 250)).$(($1 % 250 + 1))"
}

[ "$(login alice 127.0.0.1 'alice has a long password')" = 303 ] || fail "alice cannot sign in"
[ "$(login bob 127.0.0.2 'bob has a long password')" = 303 ] || fail "bob cannot sign in"

# --- 1. one account, guessed from 1000 addresses for one hour
checked=0 throttled=0 n=0 longest=0
while [ $OFF -lt 3600 ]; do
	code=$(login alice "$(attacker $n)" 'a guess')
	n=$((n + 1))
	case $code in
	303) checked=$((checked + 1)) ;;
	429)
		throttled=$((throttled + 1))
		ra=$(retry_after)
		[ -n "$ra" ] && [ "$ra" -gt 0 ] || fail "a 429 without Retry-After: $(cat "$DIR/l.h")"
		[ "$ra" -gt "$longest" ] && longest=$ra
		later "$ra"
		;;
	*) fail "guess $n at alice: $code $(cat "$DIR/l.txt")" ;;
	esac
	if [ $((n % 25)) = 0 ]; then
		code=$(login alice 127.0.0.1 'alice has a long password')
		[ "$code" = 303 ] || bad "alice at her own PC, the right password, after $checked guesses from elsewhere: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
	fi
done
echo "one hour, alice guessed from $n tries at 1000 addresses: $checked checked, $throttled throttled, the longest pause $longest s"
[ "$checked" -le 25 ] || bad "guesses at alice's password from 1000 addresses in one hour: $checked checked (at most 25)"
[ "$longest" -ge 300 ] || bad "the longest user-wide pause in one hour of guessing: $longest s (minutes expected)"
code=$(login alice 127.0.0.1 'alice has a long password')
[ "$code" = 303 ] || bad "alice at her own PC after an hour of guesses: $code"
grep -q "alice: 10 failed sign-ins" "$DIR/coord.log" ||
	bad "the log does not say that alice's user-wide pause started: $(grep -c . "$DIR/coord.log") lines"

# --- 2. a spray: one guess per name, each from an address of its own
later 7200
checked=0 throttled=0
for i in $(seq 1 60); do
	code=$(login "name$i" "127.0.140.$i" 'Primavera2026!')
	case $code in
	303) checked=$((checked + 1)) ;;
	429) throttled=$((throttled + 1)) ;;
	*) fail "spray guess $i: $code $(cat "$DIR/l.txt")" ;;
	esac
done
echo "spray of 60 names from 60 addresses: $checked checked, $throttled throttled"
[ "$throttled" -ge 20 ] || bad "a spray of 60 names from 60 addresses: $checked checked, $throttled throttled"
code=$(login bob 127.0.141.1 'bob has a long password')
[ "$code" = 429 ] || bad "bob from a new address during the spray: $code (the brake holds it)"
grep -q 'riprova tra' "$DIR/l.txt" || bad "the held sign-in's page does not say when to try again: $(cat "$DIR/l.txt")"
for who in "alice 127.0.0.1" "bob 127.0.0.2"; do
	set -- $who
	code=$(login "$1" "$2" "$1 has a long password")
	[ "$code" = 303 ] || bad "$1 at own PC during the spray: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
done
grep -q "failed sign-ins on the console" "$DIR/coord.log" ||
	bad "the log does not say that the console-wide brake started"
grep -q "name1[^0-9]" "$DIR/coord.log" && bad "the log names a name that is no account: $(grep name1 "$DIR/coord.log")"

grep 'failed sign-ins' "$DIR/coord.log"

# --- 3. a restart during a spray: the addresses bob and alice signed in
# from are recalled from the access record, so the brake does not hold them
kill "$CONSOLE_PID"
wait "$CONSOLE_PID" 2>/dev/null
later 7200
# lines that do not read as a sign-in are skipped (the record is the console's
# own, but a damaged or hand-edited one must not stop the start)
{
	printf '%s\n' '{"at":"x","program":"rete console","what":"login alice from 127.0.0.9 ok"}' \
		'{"program":"rete console","what":"login  from  ok"}' '{"what":"login from ok"}' \
		'{"at":"2026-12-07T10:00:00Z","program":"rete console","what":"login Bob from 127.0.0.9 ok"}' \
		'{"at":"2026-12-07T10:00:00Z","program":"rete console","what":"login bob from 999.0.0.1 ok"}' \
		'not json "login x from y ok"' '{"what": 7, "at": [], "program": null}'
	head -c 5000 /dev/zero | tr '\0' a
	echo ' "login a from b ok"'
} >>"$DIR/console-access.jsonl"
: >"$DIR/coord.log"
serve_console
for i in $(seq 1 40); do login "other$i" "127.0.142.$i" 'Estate2026!' >/dev/null; done
code=$(login bob 127.0.143.1 'bob has a long password')
[ "$code" = 429 ] || bad "after the restart, bob from a new address during the spray: $code (the brake holds it)"
for who in "alice 127.0.0.1" "bob 127.0.0.2"; do
	set -- $who
	code=$(login "$1" "$2" "$1 has a long password")
	[ "$code" = 303 ] || bad "after the restart, $1 at own PC during the spray: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
done
[ "$FAILS" = 0 ] || exit 1
echo "ok: guessing from many addresses meets pauses of minutes and a console-wide brake"
exit 0
