#!/bin/bash
# test_console_passwd_parallel.sh — many `rete console passwd` at once (a
# provisioning script run in parallel, two administrators at the same time)
# lose no account and no password (rev-edges s16 #3: every writer truncated
# the same console-users.new and copied the file without a lock; after ten
# at once the file could hold ONE account, commands that said "set" had no
# line, and a password change said "set" left the old hash):
#   - rounds of new accounts and password changes run at once: every
#     command says "set" (exit 0), the file then holds every account made
#     before and every one set, each once, mode 0600;
#   - each account signs in to the console with the password set last (a
#     change said "set" really replaced the hash), a changed one not with
#     its old password;
#   - while another holds the accounts' lock (console-users.lock), passwd
#     waits a few seconds, then says so (exit 2) and writes nothing.
# Waits poll with deadlines; every process started is stopped, the folder
# removed.
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-passwd

console_users a1 a2 a3 a4 a5
F="$DIR/console-users"
declare -A PW # the password each account must sign in with
for u in a1 a2 a3 a4 a5; do PW[$u]="$u has a long password"; done

# passwd_at_once ROUND USER...: `rete console passwd` for each USER at once,
# USER's new password "USER, round ROUND, a new password"; then each must
# have said "set" with exit 0
passwd_at_once() {
	local round=$1 u pids=()
	shift
	for u in "$@"; do
		printf '%s, round %s, a new password\n' "$u" "$round" |
			"$BIN/rete" console passwd "$u" -c "$DIR/coord.ini" >"$DIR/pw-$u.out" 2>&1 &
		pids+=($!)
	done
	local i=0 rc
	for u in "$@"; do
		wait "${pids[$i]}"
		rc=$?
		i=$((i + 1))
		if [ $rc -eq 0 ] && grep -q "$u's password set in" "$DIR/pw-$u.out"; then
			PW[$u]="$u, round $round, a new password"
		else
			bad "round $round: passwd $u: exit $rc: $(cat "$DIR/pw-$u.out")"
		fi
	done
}

# the file's lines: every account of PW once, no other
check_file() {
	local u n
	for u in "${!PW[@]}"; do
		n=$(grep -c "^$u:\\\$argon2id\\$" "$F")
		[ "$n" = 1 ] || bad "$1: $u has $n lines in the accounts file (said set: ${PW[$u]})"
	done
	n=$(grep -vc '^#' "$F")
	[ "$n" = ${#PW[@]} ] || bad "$1: $n accounts in the file, ${#PW[@]} expected: $(grep -v '^#' "$F" | cut -d: -f1 | tr '\n' ' ')"
	[ "$(stat -c %a "$F")" = 600 ] || bad "$1: the accounts file is $(stat -c %a "$F"), not 600"
	left=$(ls "$DIR" | grep '^console-users\.' | grep -vx 'console-users\.lock')
	[ -z "$left" ] || bad "$1: a temporary file left: $left"
	[ "$FAILS" = 0 ] || fail "$1: $FAILS problems"
}

for round in 1 2 3; do
	users=()
	for i in $(seq 1 10); do users+=("n$round-$i"); done
	# and password changes of accounts made before, at the same time
	users+=("a$round" "a$((round + 2))")
	[ "$round" -gt 1 ] && users+=("n$((round - 1))-3" "n$((round - 1))-7")
	passwd_at_once "$round" "${users[@]}"
	check_file "round $round"
done

# each account signs in with its password set last (the console needs its broker)
start_broker
serve_console
signin() { # USER PASSWORD: the place the console sends the browser to
	curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --data-urlencode "user=$1" \
		--data-urlencode "password=$2" "$URL/login"
}
for u in "${!PW[@]}"; do
	code=$(signin "$u" "${PW[$u]}")
	[ "$code" = "303 $URL/" ] || bad "$u cannot sign in with '${PW[$u]}': $code"
done
code=$(signin a1 "a1 has a long password")
[ "$code" = "303 $URL/login?failed=1" ] || bad "a1 signs in with its old password: $code"
[ "$FAILS" = 0 ] || fail "sign-ins: $FAILS problems"

# the accounts' lock held by another: passwd waits, then says so and
# writes nothing
cp -p "$F" "$DIR/before"
exec 9>"$F.lock"
flock 9 || fail "flock"
printf 'x has a long password\n' | "$BIN/rete" console passwd lockedout -c "$DIR/coord.ini" >"$DIR/lk.out" 2>&1
rc=$?
exec 9>&-
[ $rc -eq 2 ] || fail "passwd under a held lock: exit $rc: $(cat "$DIR/lk.out")"
grep -q "another program holds the accounts' lock $F.lock for over 5 s" "$DIR/lk.out" &&
	grep -q "nothing changed" "$DIR/lk.out" && grep -q "nulla è cambiato" "$DIR/lk.out" ||
	fail "passwd under a held lock: $(cat "$DIR/lk.out")"
cmp -s "$F" "$DIR/before" || fail "passwd under a held lock changed the file"
# and once it is free, it sets; the temporary files of writers killed
# before their rename (one of ours, 0.7.0's) go, another file stays
cp -p "$F" "$F.new.Ab3xY9"
cp -p "$F" "$F.new"
: >"$F.new.notours"
printf 'x has a long password\n' | "$BIN/rete" console passwd lockedout -c "$DIR/coord.ini" >"$DIR/lk2.out" 2>&1 ||
	fail "passwd after the lock: $(cat "$DIR/lk2.out")"
grep -q '^lockedout:' "$F" || fail "lockedout not set after the lock was free"
[ ! -e "$F.new.Ab3xY9" ] && [ ! -e "$F.new" ] ||
	fail "a killed writer's temporary file, holding every hash, is still there: $(ls "$DIR" | tr '\n' ' ')"
[ -e "$F.new.notours" ] || fail "passwd removed $F.new.notours, which no writer of it makes"
echo "ok: passwd at once loses no account, a held lock is said"
exit 0
