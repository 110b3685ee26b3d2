#!/bin/bash
# test_console_record.sh — a read the console cannot write in its access
# record is not made (rev-hostile s13 #2), as `rete evidence export` and the
# broker refuse theirs: with the record unwritable (here its file made a
# folder while the console runs, as a full disk would refuse the line) a
# case's history, an evidence bundle, the overview, a page and a sign-in
# answer 503 with a sentence (the page's in Italian and English, the API's
# naming the problem "record" for the pages' catalogue), and no data; the
# console's log says so once, with a count; the next read, the record
# writable again, is made and recorded.
set -u

. "$(dirname "$0")/lib.sh"
itest_init console-record

make_keys broker.mantova coord.mantova
coord_only_ini | broker_ini
coord_ini <<EOT

[console]
users = console-users
access_log = rec/console-access.jsonl
EOT
printf 'alice has a long password\n' | "$BIN/rete" console passwd alice -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
	fail "passwd alice: $(cat "$DIR/p.out")"
start_broker

serve_console
A="$DIR/rec/console-access.jsonl"

login() {
	curl -s -D "$DIR/login.h" -o "$DIR/login.txt" -w '%{http_code}' --data-urlencode user=alice \
		--data-urlencode 'password=alice has a long password' "$URL/login"
}
code=$(login)
T=$(grep -oi 'rete_session=[0-9a-f]\{64\}' "$DIR/login.h" | head -n 1 | cut -d= -f2)
[ "$code" = 303 ] && [ -n "$T" ] || fail "alice cannot sign in: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$T" "$URL/api/case?case=mn-2026-0001")
[ "$code" = 200 ] || fail "a case read, the record writable: $code"
# a page's own reads (X-Rete-Auto: 1): each route's first after the
# person's use is recorded (rev-console s13 #1: one flag per session left
# the overview's first unrecorded after the health's)
auto() { # PATH: the code of a read the page makes by itself
	curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$T" -H 'X-Rete-Auto: 1' "$URL/$1"
}
n0=$(wc -l <"$A")
[ "$(auto api/health)" = 200 ] && [ "$(auto api/overview)" = 200 ] || fail "a page's own reads refused"
[ "$(auto api/health)" = 200 ] && [ "$(auto api/overview)" = 200 ] || fail "a page's own reads refused"
n=$(($(wc -l <"$A") - n0))
[ "$n" = 2 ] || bad "health then overview, each twice, read by the page itself wrote $n lines, not 2: $(tail -n 3 "$A")"
grep -q '"what":"overview, kept up to date by the open page"' "$A" ||
	bad "the page's own overview read is not in the access record: $(tail -n 3 "$A")"

# the record cannot take a line now
mv "$A" "$A.kept" && mkdir "$A" || fail "cannot make the record a folder"
get() { # PATH: the code; the body in DIR/g.txt, the headers in DIR/g.h
	curl -s -D "$DIR/g.h" -o "$DIR/g.txt" -w '%{http_code}' -H "Cookie: rete_session=$T" "$URL/$1"
}
# a page's own further reads are refused too once the record fails (here a
# case read by the page, which does not count as the person's use)
code=$(auto "api/case?case=mn-2026-0001")
[ "$code" = 503 ] || bad "a case read by the page itself, the record unwritable: $code"
for q in api/overview api/health; do
	code=$(auto "$q")
	[ "$code" = 503 ] || bad "/$q read by the page itself again, the record unwritable: $code"
done
for q in "api/case?case=mn-2026-0001" "api/evidence?sender=social.mantova&id=r-1" api/overview api/health \
	"api/report?from=2026-01-01&to=2026-01-31&by=agency"; do
	code=$(get "$q")
	[ "$code" = 503 ] || bad "/$q with the record unwritable: $code $(head -c 200 "$DIR/g.txt")"
	grep -qi '^x-rete-problem: record' "$DIR/g.h" || bad "/$q: no X-Rete-Problem: record"
	grep -q "this read was not made" "$DIR/g.txt" || bad "/$q: $(cat "$DIR/g.txt")"
done
code=$(get "caso?case=mn-2026-0001")
[ "$code" = 503 ] && grep -q "non è stata fatta" "$DIR/g.txt" && grep -q "was not made" "$DIR/g.txt" ||
	bad "the Caso page with the record unwritable: $code $(cat "$DIR/g.txt")"
code=$(login)
[ "$code" = 503 ] && ! grep -qi '^set-cookie: rete_session=[0-9a-f]' "$DIR/login.h" &&
	grep -q "registro degli accessi" "$DIR/login.txt" ||
	bad "a sign-in with the record unwritable: $code $(grep -i set-cookie "$DIR/login.h")"
n=$(grep -c "cannot write its access record\|cannot append to the access record\|cannot open the access record" "$DIR/coord.log")
[ "$n" = 1 ] || bad "the console's log should say it once, says it $n times: $(cat "$DIR/coord.log")"

# writable again: the next read is made, and recorded
rmdir "$A" && mv "$A.kept" "$A" || fail "cannot give the record back"
code=$(get "api/case?case=mn-2026-0001")
[ "$code" = 200 ] || bad "a case read, the record writable again: $code $(cat "$DIR/g.txt")"
[ "$(grep -c '"what":"case mn-2026-0001"' "$A")" = 2 ] || bad "the reads recorded: $(cat "$A")"
grep -q "takes lines again" "$DIR/coord.log" || bad "the log does not say the record works again: $(cat "$DIR/coord.log")"

# a page's first read of a route refused unrecorded stays its first: once
# the record works again (another read recorded it, so the console no
# longer refuses), that page's next read of the route is recorded, not
# served without a line (final read s13 #2)
T1=$T
code=$(login)
T=$(grep -oi 'rete_session=[0-9a-f]\{64\}' "$DIR/login.h" | head -n 1 | cut -d= -f2)
[ "$code" = 303 ] && [ -n "$T" ] || fail "alice cannot sign in again: $code"
mv "$A" "$A.kept" && mkdir "$A" || fail "cannot make the record a folder again"
code=$(auto api/overview)
[ "$code" = 503 ] || bad "the page's first overview read, the record unwritable: $code"
rmdir "$A" && mv "$A.kept" "$A" || fail "cannot give the record back again"
# another session's read (not this page's person) is recorded
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rete_session=$T1" "$URL/api/case?case=mn-2026-0001")
[ "$code" = 200 ] || bad "another session's case read, the record writable again: $code"
n0=$(wc -l <"$A")
code=$(auto api/overview)
n=$(($(wc -l <"$A") - n0))
[ "$code" = 200 ] && [ "$n" = 1 ] ||
	bad "the page's overview read after its first was refused: $code, $n lines written (1 expected): $(tail -n 2 "$A")"

[ "$FAILS" = 0 ] || exit 1
echo "ok: a read the console cannot record is not made"
exit 0
