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
#      holds every sign-in from an address not known for its user whose
#      name or address failed in the last 24 h, and the log says so; bob
#      and alice at their own PCs still sign in, and bob at a new PC too,
#      while an attacker polls the brake (rev-throttle #1: never let in).
#   3. the same after a restart of the console: the addresses they signed
#      in from are recalled from the access record, its closed parts too
#      (rev-throttle #3), not from a damaged line nor one older than 90
#      days (#7); held attempts write one line a minute per address, no
#      name that is no account (#3, #4).
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
# the count takes failures from every address, her own PC's too (rev-throttle #5)
grep -q "alice: 10 failed sign-ins from addresses it never" "$DIR/coord.log" &&
	bad "the log says the failures came from addresses alice never signed in from: $(grep 'alice: 10' "$DIR/coord.log")"

# --- 2. a spray: one guess per name, from 20 addresses in turn
later 7200
checked=0 throttled=0
for i in $(seq 1 60); do
	code=$(login "name$i" "127.0.140.$((i % 20 + 1))" 'Primavera2026!')
	case $code in
	303) checked=$((checked + 1)) ;;
	429) throttled=$((throttled + 1)) ;;
	*) fail "spray guess $i: $code $(cat "$DIR/l.txt")" ;;
	esac
done
echo "spray of 60 names from 20 addresses: $checked checked, $throttled throttled"
[ "$throttled" -ge 20 ] || bad "a spray of 60 names from 20 addresses: $checked checked, $throttled throttled"
# the brake holds only sign-ins whose name or address failed in the last
# 24 h (rev-throttle #1): a sprayer's address is held, bob at a new PC is not
code=$(login name61 127.0.140.1 'Primavera2026!')
[ "$code" = 429 ] || bad "a new name from a sprayer's address during the spray: $code (the brake holds it)"
grep -q 'riprova tra' "$DIR/l.txt" || bad "the held sign-in's page does not say when to try again: $(cat "$DIR/l.txt")"
grep -q 'avvisa il tecnico' "$DIR/l.txt" && grep -q 'tell IT' "$DIR/l.txt" ||
	bad "the held sign-in's page does not say to tell IT if the wait repeats: $(grep -o 'Troppi[^<]*' "$DIR/l.txt")"
grep -q "accesso entri subito\|before, you get in at once" "$DIR/l.txt" && bad "the held sign-in's page promises 'at once': $(grep -o 'Troppi[^<]*' "$DIR/l.txt")"
code=$(login bob 127.0.141.1 'bob has a long password')
[ "$code" = 303 ] || bad "bob, right password, at a new PC with no failures, during the spray: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
# an attacker polling the brake from 16 addresses while rosa-like carol,
# right password, a new PC, tries at each Retry-After: she gets in
for round in 1 2 3; do
	for a in $(seq 1 16); do login "poll$round$a" "127.0.140.$a" 'Autunno2026!' >/dev/null; done
	code=$(login bob 127.0.141.$((round + 1)) 'bob has a long password')
	[ "$code" = 303 ] && break
	later "$(retry_after)"
done
[ "$code" = 303 ] || bad "bob at a new PC while an attacker polls the brake: $code after 3 tries"
for who in "alice 127.0.0.1" "bob 127.0.0.2"; do
	set -- $who
	code=$(login "$1" "$2" "$1 has a long password")
	[ "$code" = 303 ] || bad "$1 at own PC during the spray: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
done
grep -q "failed sign-ins on the console" "$DIR/coord.log" ||
	bad "the log does not say that the console-wide brake started"
grep -q "name1[^0-9]" "$DIR/coord.log" && bad "the log names a name that is no account: $(grep name1 "$DIR/coord.log")"
# a held name that is no account is not recorded (a password typed into the
# user field; rev-throttle #4)
grep -q 'login name61 refused' "$DIR/console-access.jsonl" &&
	bad "the record names a held name that is no account: $(grep -m1 'login name61 refused' "$DIR/console-access.jsonl")"

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
# the record's times as the console's clock reads them (it runs OFF s ahead)
ago() { date -u -d "@$(($(date +%s) + OFF - $1 * 86400))" +%Y-%m-%dT%H:%M:%S.000Z; }
{
	printf '{"at":"%s","program":"rete console","what":"login alice from 127.0.0.8 ok"}\n' "$(ago 91)"
	printf '{"at":"%s","program":"rete console","what":"login alice from 127.0.0.7 ok"}\n' "$(ago 89)"
} >>"$DIR/console-access.jsonl"
# a closed part of the record, 10 days old, holds alice's sign-in at 127.0.0.6
# (rev-throttle #3: the recall read only the current file)
part="$DIR/console-access.jsonl.$(date -u -d "@$(($(date +%s) + OFF - 10 * 86400))" +%Y%m%dT%H%M%S000Z)"
printf '{"at":"%s","program":"rete console","what":"login alice from 127.0.0.6 ok"}\n' "$(ago 11)" >"$part"
chmod 600 "$part"
: >"$DIR/coord.log"
serve_console
for i in $(seq 1 40); do login "other$i" "127.0.142.$i" 'Estate2026!' >/dev/null; done
code=$(login other41 127.0.142.1 'Estate2026!')
[ "$code" = 429 ] || bad "after the restart, a sprayer's address during the spray: $code (the brake holds it)"
for who in "alice 127.0.0.1" "bob 127.0.0.2"; do
	set -- $who
	code=$(login "$1" "$2" "$1 has a long password")
	[ "$code" = 303 ] || bad "after the restart, $1 at own PC during the spray: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
done
# alice's user-wide pause: then only the addresses recalled for her are spared
for i in $(seq 1 12); do login alice "127.0.144.$i" 'a guess' >/dev/null; done
for a in 127.0.0.7 127.0.0.6; do
	code=$(login alice $a 'alice has a long password')
	[ "$code" = 303 ] || bad "after the restart, alice paused, at $a (recalled) with the right password: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
done
for a in 127.0.0.9 127.0.0.8; do
	code=$(login alice $a 'alice has a long password')
	[ "$code" = 429 ] || bad "after the restart, alice paused, at $a (a damaged or 91-day-old line: not recalled): $code"
done
# held attempts from one address write at most one line a minute (rev-throttle #3)
for i in $(seq 1 20); do login alice 127.0.144.1 'a guess' >/dev/null; done
n=$(grep '"who":"127.0.144.1"' "$DIR/console-access.jsonl" | grep -c 'refused: throttled')
[ "$n" -le 1 ] || bad "20 held attempts from one address in a minute: $n 'refused: throttled' lines (at most 1)"
grep -q 'login other[0-9]* refused' "$DIR/console-access.jsonl" &&
	bad "the record names a held name that is no account: $(grep -m1 'login other' "$DIR/console-access.jsonl")"
[ "$FAILS" = 0 ] || exit 1
echo "ok: guessing from many addresses meets pauses of minutes and a console-wide brake"
exit 0
