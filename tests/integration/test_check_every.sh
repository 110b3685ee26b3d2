#!/usr/bin/env bash
# test_check_every.sh — a configuration check says everything the start
# would refuse, all at once (review of session 11).
#
#   every problem   an agent.ini with five problems: rete-agent --check-config
#                   and rete --check-config list each one with FILE:LINE:, and
#                   count them; the start says the same.
#   timing          each timing key of [agent] has a floor: below it (a timer
#                   that would spin) a sentence naming the key, the value and
#                   the floor; reconnect_min longer than reconnect_max, both
#                   given, is refused.
#   upgrade         values rete 0.7.0 took start: above a key's range the
#                   longest is used and said (a note, a warning at start);
#                   one of reconnect_min/max alone moves the other's default;
#                   rete status, sar and send do not judge the timers.
#   lines           a line over 199 characters and one that is no key =
#                   value: each said once, at its own line, the lines after
#                   them read (and their problems said).
#   paths           spool under /proc (cannot be made) and [privacy]
#                   access_log naming a folder are problems.
#   coord.ini       time_zone unknown here, [console] listen with a port
#                   beyond 65535, an unknown [console] key and
#                   header_timeout = 0s: rete --check-config lists each (the
#                   programs refuse each at start).
#   coord.ini, start  users naming a missing file (also on loopback),
#                   access_log under /proc, TLS files missing or a key
#                   readable by others, no events: the check refuses what
#                   rete console refuses, with FILE:LINE:, making nothing.
#   console         passwd refuses a file with a line that is no key = value
#                   (naming itself: rete console passwd), a password that is
#                   not UTF-8, and says
#                   what is missing without -c; --listen 0.0.0.0 gets the
#                   console's sentence (no scraper, no 9464); users naming a
#                   missing file says it does not exist.
#   rete-agent      a usage error says what was wrong before the usage.
#   console API     an answer that is not ok names its problem
#                   (X-Rete-Problem: period for a period ending before it
#                   starts), and every problem the console names has its
#                   sentence in both catalogues of texts.js (it, en), which
#                   the pages show instead of the English detail; the
#                   catalogues' singular (one cosigner), the period's
#                   bound (not after) and the case id's (characters).
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
. "$(dirname "$0")/lib.sh"
itest_init test-check-every

make_keys broker.mantova social.mantova coord.mantova
cd "$DIR" || fail "cd $DIR"

# --- every problem -----------------------------------------------------------
printf '[agent]\nid = X\nkey = /nonexist\nbroker = http://x\npoll = 0\nfoo = 1\n' >m.ini
for prog in "rete-agent --check-config -c m.ini" "rete --check-config -c m.ini"; do
	what="$prog: five problems"
	run $BIN/$prog
	expect 2 "m.ini:2: [agent] id: 'X' is not a party id" \
		"m.ini:3: [agent] key:" "m.ini:4: [agent] broker:" \
		"m.ini:5: [agent] poll: '0'" "m.ini:6: [agent] foo: unknown key" \
		"[agent] broker_key is missing"
	lacks "1 problem"
done
what="rete-agent start: five problems"
run "$BIN/rete-agent" -c m.ini
expect 2 "m.ini:2: [agent] id" "m.ini:6: [agent] foo: unknown key" "nothing was started"

# --- timing ------------------------------------------------------------------
# check WHAT LINES: rete-agent --check-config of a good [agent] and LINES
# (printf's format) after it, in t.ini
check() {
	what=$1
	{
		cat <<EOT
[agent]
id = social.mantova
key = keys/social.mantova.key
broker = ipc://$DIR/broker.sock
broker_key = keys/broker.mantova.pub
EOT
		printf "$2"
	} >t.ini
	run "$BIN/rete-agent" --check-config -c t.ini
}
# below its floor a timer spins: refused
for kv in "heartbeat = 1ms|heartbeat|at least 100ms" "resubmit = 1ms|resubmit|at least 100ms" \
	"poll = 10ms|poll|at least 100ms" "reconnect_min = 1ms|reconnect_min|at least 100ms" \
	"witness = 10ms|witness|at least 100ms" "hook_timeout = 0ms|hook_timeout|at least 100ms"; do
	IFS='|' read -r line key range <<<"$kv"
	check "timing: $line" "$line\n"
	expect 2 "t.ini:6: [agent] $key: '${line#* = }'" "$range"
done
check "timing: not a duration" 'poll = 999999999999h\n'
expect 2 "t.ini:6: [agent] poll: '999999999999h' is not a duration"
check "timing: reconnect_min 1m > reconnect_max 1s, both given" 'reconnect_min = 1m\nreconnect_max = 1s\n'
expect 2 "t.ini:6: [agent] reconnect_min (1m) is longer than reconnect_max (1s, line 7)"
check "timing: the bounds themselves" \
	'reconnect_min = 100ms\nreconnect_max = 100ms\nheartbeat = 100ms\npoll = 100ms\n'
expect 0 "fine"

# --- timing: a file rete 0.7.0 took still starts -------------------------------
# above a key's range the longest is used, said on one line (a note of the
# check, a warning of the start); below it only where the timer would spin
for kv in "witness = 2h|witness|1h" "heartbeat = 15m|heartbeat|10m" \
	"hook_timeout = 2d|hook_timeout|24h" "reconnect_max = 2h|reconnect_max|1h" \
	"poll = 90000000ms|poll|1h" "witness_patience = 30d|witness_patience|7d"; do
	IFS='|' read -r line key max <<<"$kv"
	check "upgrade: $line" "$line\n"
	expect 0 "t.ini:6: note: [agent] $key: ${line#* = } is longer than $max" "$max is used" "fine"
done
check "upgrade: resubmit and heartbeat 500ms" 'resubmit = 500ms\nheartbeat = 500ms\n'
expect 0 "fine"
lacks "resubmit" "heartbeat"
check "upgrade: reconnect_min = 1m alone" 'reconnect_min = 1m\n'
expect 0 "t.ini:6: note: [agent] reconnect_min: 1m is longer than reconnect_max's default (30s)" \
	"reconnect_max is 1m" "fine"
check "upgrade: reconnect_max = 150ms alone" 'reconnect_max = 150ms\n'
expect 0 "t.ini:6: note: [agent] reconnect_max: 150ms is shorter than reconnect_min's default (200ms)" \
	"reconnect_min is 150ms" "fine"
check "upgrade: the start" \
	'witness = 2h\nheartbeat = 15m\nhook_timeout = 2d\nresubmit = 500ms\nreconnect_min = 1m\n'
what="upgrade: the agent starts with timing values 0.7.0 took"
"$BIN/rete-agent" -c t.ini >agent-up.log 2>&1 &
PIDS+=($!)
upped() { grep -q 'started: spool' agent-up.log; }
wait_for 20 upped || bad "$what: no 'started': $(cat agent-up.log)"
grep -qF "t.ini:6: [agent] witness: 2h is longer than 1h" agent-up.log ||
	bad "$what: no warning for witness: $(cat agent-up.log)"
grep -qF "t.ini:10: [agent] reconnect_min: 1m is longer than reconnect_max's default" agent-up.log ||
	bad "$what: no warning for reconnect_min: $(cat agent-up.log)"
stop_all
# rete status, send and sar read agent.ini for its paths: its timers are
# not theirs to judge, and the access record stays in the data folder
check "commands without timers" 'heartbeat = 1ms\nwitness = soon\n'
rm -f access.log
what="rete status: the timers are not its own"
run "$BIN/rete" status -c t.ini --timeout 1
lacks "heartbeat" "witness"
what="rete sar: the timers are not its own"
run "$BIN/rete" sar --person RSSMRA80A01F205X -c t.ini
lacks "heartbeat" "witness"
[ ! -e access.log ] || bad "$what: the read was recorded in ./access.log beside agent.ini"
printf '{}' >msg.json
what="rete send: the timers are not its own"
run "$BIN/rete" send -c t.ini msg.json
lacks "heartbeat" "witness"

# --- lines the reader does not take ---------------------------------------------
# a line longer than inih's 199 characters is said at its own line, and
# the lines after it keep their numbers; a line that is no key = value is
# said once (not again by the [privacy] reader), and the lines after it
# are read (their problems listed too)
long=$(printf '%0300d' 0)
check "a long comment, a line that is no key = value" "; $long\nnot a key\npoll = 0\n"
expect 2 "t.ini:6: the line is longer than 199 characters" "t.ini:7: not 'key = value' or '[section]'; the line was not read (the lines after it were)" \
	"t.ini:8: [agent] poll: '0'"
lacks "t.ini:9:" "(the lines after it were not read)"
[ "$(grep -c "not 'key = value'" <<<"$out")" = 1 ] || bad "$what: the line is said more than once: $out"

# --- paths -------------------------------------------------------------------
check "spool under /proc" 'spool = /proc/rete-spool\n'
expect 2 "[agent] spool: /proc/rete-spool"
lacks "rete-spool does not exist yet"
check "[privacy] access_log a folder" '[privacy]\naccess_log = /tmp\n'
expect 2 "[privacy] access_log: /tmp is a folder"

# --- coord.ini ----------------------------------------------------------------
cat >c.ini <<EOT
[client]
id = coord.mantova
key = keys/coord.mantova.key
broker = ipc://$DIR/broker.sock
broker_key = keys/broker.mantova.pub
time_zone = Mars/X
[console]
listen = 127.0.0.1:99999
colour = blue
header_timeout = 0s
EOT
what="coord.ini: what the programs refuse"
run "$BIN/rete" --check-config -c c.ini
expect 2 "c.ini:6: [client] time_zone: 'Mars/X'" "c.ini:8: [console] listen:" \
	"c.ini:9: [console] colour: unknown key" "c.ini:10: [console] header_timeout: '0s'"
cat >c5.ini <<EOT
[client]
id = X
key = keys/coord.mantova.key
broker = ipc://$DIR/broker.sock
timeout = 0s
colour = blue
time_zone = ../etc
events = tcp://127.0.0.1
[report]
min_count = -1
EOT
what="coord.ini: every [client] problem with its line"
for prog in "--check-config -c c5.ini" "console -c c5.ini"; do
	run "$BIN/rete" $prog
	expect 2 "c5.ini:2: [client] id: 'X' is not a party id" "c5.ini:5: [client] timeout: '0s'" \
		"c5.ini:6: [client] colour: unknown key" "c5.ini:7: [client] time_zone: '../etc'" \
		"c5.ini:8: [client] events:" "c5.ini:10: [report] min_count:" "[client] broker_key"
done
what="audit timeline -c: the same time zone refused"
run "$BIN/rete" audit timeline -c c.ini --case mn-1
expect 2 "c.ini:6: [client] time_zone: 'Mars/X' is not a time zone this machine knows"
lacks "shown in UTC"
what="console start: the same time zone refused"
run "$BIN/rete" console -c c.ini
expect 2 "Mars/X"

# --- coord.ini: what the console's start refuses, the check refuses -----------
# (the same judgement, console_settle, before any connection; nothing made)
# good_coord FILE LINES: a coord.ini that the check takes, with LINES
# (printf's format) after its [console]
good_coord() {
	{
		head -5 c.ini
		printf 'events = ipc://%s/events.sock\n[console]\n' "$DIR"
		printf "$2"
	} >"$1"
}
good_coord cg.ini ''
what="coord.ini: a good one"
run "$BIN/rete" --check-config -c cg.ini
expect 0 "fine"
good_coord cu1.ini 'users = cu-typo.users\n'
for cmd in "--check-config -c cu1.ini" "console -c cu1.ini"; do
	what="users naming a missing file, loopback: rete $cmd"
	run "$BIN/rete" $cmd
	expect 2 "cu1.ini:8: [console] users: $DIR/cu-typo.users does not exist"
	lacks "serving"
done
[ ! -e cu-typo.users ] || bad "the check made the users file"
good_coord ca.ini 'access_log = /proc/console.jsonl\n'
what="coord.ini: access_log under /proc"
run "$BIN/rete" --check-config -c ca.ini
expect 2 "ca.ini:8: [console] access_log: the folder /proc is on the kernel's proc file system"
good_coord ct.ini 'tls_cert = none.crt\ntls_key = none.key\n'
what="coord.ini: TLS files missing"
run "$BIN/rete" --check-config -c ct.ini
expect 2 "ct.ini:8: [console] tls_cert: $DIR/none.crt: cannot read" "ct.ini:9: [console] tls_key: $DIR/none.key: cannot read"
console_cert
chmod 644 console.key
good_coord ck.ini 'tls_cert = console.crt\ntls_key = console.key\n'
what="coord.ini: TLS key readable by others"
run "$BIN/rete" --check-config -c ck.ini
expect 2 "ck.ini:9: [console] tls_key: $DIR/console.key: the TLS private key is readable by others"
chmod 600 console.key
run "$BIN/rete" --check-config -c ck.ini
expect 0 "fine"
{ head -5 c.ini; printf '[console]\nlisten = 127.0.0.1:8480\n'; } >ce.ini
what="coord.ini: no events, a [console]"
run "$BIN/rete" --check-config -c ce.ini
expect 2 "ce.ini: [client] events is missing"
head -5 c.ini >ce2.ini
what="coord.ini: no events, no [console] (a report's or an audit's file)"
run "$BIN/rete" --check-config -c ce2.ini
expect 0 "ce2.ini: note: [client] events is not set" "fine"
what="rete console: no events"
run "$BIN/rete" console -c ce2.ini
expect 2 "ce2.ini: [client] events is missing"

# --- console ------------------------------------------------------------------
head -5 c.ini >cu.ini
printf '[console]\nusers = cu.users\n' >>cu.ini
what="passwd: not UTF-8"
out=$(printf 'pass\xff\xfeword-long\n' | "$BIN/rete" console passwd carl -c cu.ini 2>&1)
rc=$?
expect 2 "not valid UTF-8"
[ ! -s cu.users ] || bad "$what: the account was written: $(cat cu.users)"
{ head -5 c.ini; printf '[console]\nusers = cs.users\nnot a key\ncolour = blue\n'; } >cs.ini
what="passwd: a line that is no key = value, an unknown key"
out=$(printf 'a-long-password\n' | "$BIN/rete" console passwd carl -c cs.ini 2>&1)
rc=$?
expect 2 "rete console passwd: cs.ini:8: not 'key = value'" "rete console passwd: cs.ini:9: [console] colour: unknown key"
lacks "rete console: "
[ ! -e cs.users ] || bad "$what: the account was written"
what="passwd: no -c"
run "$BIN/rete" console passwd carl
expect 2 "-c coord.ini is required"
what="console --listen 0.0.0.0"
run "$BIN/rete" console -c cu.ini --listen 0.0.0.0:48480
expect 2 "every interface"
lacks "9464" "scraper"
what="console --listen localhost"
run "$BIN/rete" console -c cu.ini --listen localhost:48480
expect 2 "127.0.0.1:48480"
lacks "9464"
head -5 c.ini >cn.ini
printf '[console]\nusers = /nonexistent\n' >>cn.ini
what="console users missing, remote listen"
run "$BIN/rete" console -c cn.ini --listen 192.0.2.10:8480
expect 2 "/nonexistent does not exist"
lacks "the file has none"

# --- rete-agent usage errors ---------------------------------------------------
what="rete-agent: no arguments"
run "$BIN/rete-agent"
expect 2 "rete-agent: -c agent.ini is required"
what="rete-agent: an extra argument"
run "$BIN/rete-agent" -c t.ini extra
expect 2 "rete-agent: unexpected argument 'extra'"
what="rete-agent: --key without --trust"
run "$BIN/rete-agent" -c t.ini --key AAAA
expect 2 "rete-agent: --key goes with --trust"
what="rete-agent --help: exit 1"
run "$BIN/rete-agent" --help
expect 0 "no changed key"

# --- console API: problems in the page's language ------------------------------
coord_only_ini | broker_ini
coord_ini </dev/null
start_broker
"$BIN/rete" console -c "$DIR/coord.ini" --listen 127.0.0.1:0 >"$DIR/console.log" 2>&1 &
PIDS+=($!)
up() { grep -q "serving coord.mantova's view at http://127.0.0.1:" "$DIR/console.log"; }
wait_for 20 up || fail "the console did not start: $(cat "$DIR/console.log")"
url=$(grep -o "http://127.0.0.1:[0-9]*" "$DIR/console.log" | head -1)
what="console API: a period ending before it starts"
out=$(curl -s -D - -o /dev/null -H "Host: 127.0.0.1" "$url/api/report?from=2026-05-01&to=2026-01-01")
rc=$(sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' <<<"$out" | head -1)
expect 400 "X-Rete-Problem: period"
what="console API: a date left empty"
out=$(curl -s -D - -o /dev/null -H "Host: 127.0.0.1" "$url/api/report?from=&to=2026-01-01")
rc=$(sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' <<<"$out" | head -1)
expect 400 "X-Rete-Problem: dates"
what="console API: a period too long by month"
out=$(curl -s -D - -H "Host: 127.0.0.1" "$url/api/trend?from=1990-01-01&to=2026-01-01&step=month")
rc=$(sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' <<<"$out" | head -1)
expect 400 "X-Rete-Problem: period-long-month"
lacks "or step=month"
what="console API: a period too long by week"
out=$(curl -s -D - -H "Host: 127.0.0.1" "$url/api/trend?from=2020-01-01&to=2026-01-01&step=week")
rc=$(sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' <<<"$out" | head -1)
expect 400 "X-Rete-Problem: period-long" "or step=month"
grep -q '"api.period-long-month":.*mese' "$RETE_SOURCE_DIR/agents/console/static/texts.js" &&
	! grep -q '"api.period-long-month":.*scala per mese' "$RETE_SOURCE_DIR/agents/console/static/texts.js" ||
	bad "texts.js: api.period-long-month"
# the catalogues: one cosigner is singular (not "1 enti hanno"), a period
# of one day is accepted (the start not after the end), a case id's bound
# is in characters
what="texts.js: singular, period, case id"
tj=$RETE_SOURCE_DIR/agents/console/static/texts.js
for want in '"wit.countOne": "1 ente ha controfirmato' '"wit.countNoSizeOne": "1 ente ha controfirmato' \
	'"wit.countOne": "1 agency cosigned' '"wit.countNoSizeOne": "1 agency cosigned' \
	'"api.period": "[^"]*non deve venire dopo' '"api.period": "[^"]*must not come after' \
	'"api.case-id": "[^"]*al massimo 64 caratteri' '"api.case-id": "[^"]*at most 64 characters'; do
	grep -q "$want" "$tj" || bad "$what: no $want in texts.js"
done
grep -q 'n === 1 ? "wit.countOne"' "$RETE_SOURCE_DIR/agents/console/static/app.js" &&
	grep -q 'n === 1 ? "wit.countNoSizeOne"' "$RETE_SOURCE_DIR/agents/console/static/app.js" ||
	bad "$what: app.js does not choose the singular for one cosigner"
what="console API: evidence with the broker down"
kill "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null
out=$(curl -s -D - -o "$DIR/ev.txt" -H "Host: 127.0.0.1" "$url/api/evidence?sender=social.mantova&id=m-1")
rc=$(sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' <<<"$out" | head -1)
expect 502 "X-Rete-Problem: broker"
lacks "evidence-bad"
what="console API: evidence with the broker key not a key"
mv keys/broker.mantova.pub keys/broker.mantova.pub.good
echo "not a key" >keys/broker.mantova.pub
out=$(curl -s -D - -o "$DIR/ev.txt" -H "Host: 127.0.0.1" "$url/api/evidence?sender=social.mantova&id=m-1")
rc=$(sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' <<<"$out" | head -1)
mv keys/broker.mantova.pub.good keys/broker.mantova.pub
expect 500 "X-Rete-Problem: console"
lacks "evidence-bad"
what="console API: every problem named has its sentences"
for code in $(grep -o 'console_problem_code(a, [^;]*' "$RETE_SOURCE_DIR/agents/console/console.c" |
	grep -o '"[a-z-]*"' | tr -d '"' | sort -u); do
	n=$(grep -c "\"api\.$code\":" "$RETE_SOURCE_DIR/agents/console/static/texts.js")
	[ "$n" = 2 ] || bad "$what: api.$code is in $n catalogues of texts.js, not 2"
done

[ "$FAILS" -eq 0 ] || exit 1
echo "test_check_every: ok"
