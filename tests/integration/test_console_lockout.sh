#!/bin/bash
# test_console_lockout.sh — nobody keeps a named coordinator out of the
# console by guessing her password (rev-hostile s13 #6): wrong passwords
# for alice from other addresses (no account needed) pause those
# addresses, not alice at her own PC, where her right password still signs
# her in; from an address of her own that guesses, alice is paused as
# before (the throttle of a user from one address).
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-lockout

console_users alice
start_broker
serve_console

login() { # ADDRESS PASSWORD: the answer's code
	curl -s --interface "$1" -o "$DIR/l.txt" -w '%{http_code}' --data-urlencode user=alice \
		--data-urlencode "password=$2" "$URL/login"
}
[ "$(login 127.0.0.1 'alice has a long password')" = 303 ] || fail "alice cannot sign in"
# an attacker, one wrong password from each of 12 addresses
for i in $(seq 1 12); do
	code=$(login "127.0.123.$i" 'a guess')
	[ "$code" = 303 ] || [ "$code" = 429 ] || fail "guess $i: $code"
done
code=$(login 127.0.0.1 'alice has a long password')
[ "$code" = 303 ] || bad "alice at her own address, the right password, after 12 guesses from elsewhere: $code $(grep -o 'riprova tra [0-9]* s' "$DIR/l.txt")"
# the guessing address itself is paused for alice after 3
for i in 1 2 3; do login 127.0.124.1 'a guess' >/dev/null; done
code=$(login 127.0.124.1 'a guess')
[ "$code" = 429 ] || bad "the 4th guess from one address: $code"

[ "$FAILS" = 0 ] || exit 1
echo "ok: guesses from elsewhere do not lock a user out"
exit 0
