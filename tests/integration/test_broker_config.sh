#!/usr/bin/env bash
# test_broker_config.sh — what broker.ini says is what the broker does
# (session 11's review of the broker).
#
#   access record  access_log a folder, or under a file: --check-config and
#                  the start refuse it (exit 2, a sentence). At run time a
#                  read the broker cannot record (the record replaced by a
#                  folder) is refused to the client ("this read was not
#                  made") and not served; the next read tries again, and
#                  once the record can be written, reads are served and
#                  recorded again.
#   reload         a SIGHUP that changes max_frame, verify_threads,
#                  heartbeat or tsa_password_file logs one warning each,
#                  naming the key, the running and the new value (never the
#                  password) and "restart"; one that moves the access
#                  record to a folder is refused, and reads go on being
#                  recorded where they were.
#   durations      heartbeat 9d (it overflowed ZeroMQ's int of ms: the
#                  start failed with "Invalid argument") is refused with
#                  the range; each calendar-duration key says what was
#                  wrong and what it accepts: a missing unit, wd (which
#                  these keys refuse: never offered as an example), zero
#                  (timestamp_grace: "off"), a value too large (the range).
#   paths          state a folder, state in a missing folder, an ipc://
#                  endpoint in a missing folder: --check-config exit 2.
#   BOM            broker.ini saved with a UTF-8 byte order mark is fine.
#   lines          the listen host check and a key shared by two parties
#                  cite the key's own line.
#   values         tsa_url with port 99999; an agent's on_message with an
#                  unterminated quote (sh would refuse every hook).
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
. "$(dirname "$0")/lib.sh"
itest_init broker-config

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
{ echo "access_log = access.log"; agencies_ini "Servizi Sociali"; } | broker_ini
coord_ini </dev/null
bini=$DIR/broker/broker.ini
cp "$bini" "$bini.orig"
# with LINE...: broker.ini is the original with each LINE added at the top
# of [broker] (a later key of the same name is removed)
with() {
	cp "$bini.orig" "$bini"
	local l
	for l in "$@"; do
		sed -i -e "/^${l%% =*} = /d" "$bini"
		sed -i -e "s#^\\[broker\\]\$#[broker]\\n$l#" "$bini"
	done
}
check() { run rete-broker -c "$bini" --check-config; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca \
	-keyout "$DIR/ca.key" -out "$DIR/ca.pem" >/dev/null 2>&1 || fail "openssl req"

# --- the access record at start ---------------------------------------------
mkdir -p "$DIR/folder"
touch "$DIR/afile"
what="access_log a folder"
with "access_log = $DIR/folder"
check
expect 2 "[broker] access_log" "is a folder"
run timeout 30 rete-broker -c "$bini" --init
expect 2 "[broker] access_log" "is a folder"
[ ! -e "$DIR/broker/store" ] || bad "$what: the start created the store"
what="access_log under a file"
with "access_log = $DIR/afile/access.log"
check
expect 2 "[broker] access_log" "$DIR/afile" "not a folder"

# --- durations ---------------------------------------------------------------
what="heartbeat 9d"
with "heartbeat = 9d"
check
expect 2 "[broker] heartbeat: '9d'" "at most 1h"
with "heartbeat = 1h"
check
expect 0 "fine"
what="checkpoint_interval without a unit"
with "checkpoint_interval = 2"
check
expect 2 "[broker] checkpoint_interval: '2' has no unit" "s, m, h or d"
lacks "unit ''" "wd"
for key in checkpoint_interval expiry tsa_timeout timestamp_grace redeliver heartbeat; do
	extra=()
	[ $key = timestamp_grace ] && extra=("tsa_url = http://127.0.0.1:9/tsa" "tsa_ca = $DIR/ca.pem")
	for v in 1wd 3x 99999999999d; do
		what="$key = $v"
		with "${extra[@]}" "$key = $v"
		check
		expect 2 "[broker] $key: '$v'" "s, m, h or d"
		lacks "3wd" "or wd" "e.g. off"
		[ $key = timestamp_grace ] && expect 2 "or off"
		[ $v = 99999999999d ] && expect 2 "too large" "at most"
	done
done
what="timestamp_grace = 0s"
with "tsa_url = http://127.0.0.1:9/tsa" "tsa_ca = $DIR/ca.pem" "timestamp_grace = 0s"
check
expect 2 "[broker] timestamp_grace: '0s'" "off"

# --- paths ---------------------------------------------------------------------
what="state a folder"
with "state = $DIR/folder"
check
expect 2 "[broker] state" "is a folder"
what="state in a missing folder"
with "state = $DIR/nonexistent/x.state"
check
expect 2 "[broker] state" "$DIR/nonexistent" "does not exist"
what="listen in a missing folder"
with "listen = ipc://$DIR/nonexist/dir/sock"
check
expect 2 "[broker] listen" "$DIR/nonexist/dir" "does not exist"

# --- BOM, lines, values --------------------------------------------------------------
what="a byte order mark"
cp "$bini.orig" "$bini"
printf '\xef\xbb\xbf' | cat - "$bini.orig" >"$bini"
check
expect 0 "fine"
what="listen on an address not of this machine"
with "listen = tcp://192.0.2.1:7700"
check
expect 2 "broker.ini:2: [broker] listen: tcp://192.0.2.1:7700 is not an address"
what="two parties with one key"
cp "$bini.orig" "$bini"
sed -i -e 's#^key = ../keys/cpi.mantova.pub#key = ../keys/social.mantova.pub#' "$bini"
kline=$(grep -n '^key = ../keys/social.mantova.pub' "$bini" | tail -1 | cut -d: -f1)
check
expect 2 "broker.ini:$kline: [agency cpi.mantova] key: the same key as party social.mantova"
what="tsa_url with port 99999"
with "tsa_url = https://[::1]:99999/tsa" "tsa_ca = $DIR/ca.pem"
check
expect 2 "[broker] tsa_url" "99999" "1 to 65535"
for u in "https://[::1]:8080/tsa" "http://tsa.example:318/x" "https://tsa.example/tsa"; do
	what="tsa_url = $u"
	with "tsa_url = $u" "tsa_ca = $DIR/ca.pem"
	check
	expect 0 "fine"
done
what="on_message with an unterminated quote"
agent_ini social.mantova
aini=$DIR/agents/social.mantova/agent.ini
echo "on_message = '/bin/true" >>"$aini"
hline=$(wc -l <"$aini")
run rete-agent --check-config -c "$aini"
expect 2 "agent.ini:$hline: [agent] on_message: the single quote at character 1" "not closed"
sed -i -e "s#^on_message = .*#on_message = '/bin/true' --flag \"a b\"#" "$aini"
run rete-agent --check-config -c "$aini"
lacks "on_message"

# --- at run time: the access record, a reload ----------------------------------
cp "$bini.orig" "$bini"
printf 'pw-one-9f3c\n' >"$DIR/pw"
chmod 600 "$DIR/pw"
sed -i -e "s#^\\[broker\\]\$#[broker]\\ntsa_url = http://127.0.0.1:9/tsa\\ntsa_ca = $DIR/ca.pem\\ntsa_user = u\\ntsa_password_file = $DIR/pw#" "$bini"
rm -rf "$DIR/broker/store"
start_broker
alog=$DIR/broker/access.log
export RETE_ACCESS_LOG=$DIR/cli-access.log
read_log() { run timeout 60 rete audit timeline -c "$DIR/coord.ini" --case c-1; }
what="a read"
read_log
expect 0
n1=$(grep -c '"program":"rete-broker"' "$alog")
[ "$n1" -ge 1 ] || bad "$what: not in the broker's access record"
what="a read the broker cannot record"
rm -f "$alog"
mkdir "$alog"
read_log
[ "$rc" != 0 ] || bad "$what: it was served (exit 0): $out"
grep -qF "this read was not made" <<<"$out" || bad "$what: the client was not told: $out"
grep -q "access record" "$DIR/broker.log" || bad "$what: the broker's log does not say it"
read_log
[ "$rc" != 0 ] || bad "$what, again: it was served (exit 0): $out"
rmdir "$alog"
what="a read once the record can be written again"
read_log
expect 0
[ -f "$alog" ] && [ "$(grep -c '"program":"rete-broker"' "$alog")" -ge 1 ] ||
	bad "$what: not recorded"

what="a reload that changes what needs a restart"
bpid=${PIDS[0]}
sed -i -e 's#^\[broker\]$#[broker]\nmax_frame = 32MiB\nverify_threads = 3\nheartbeat = 7s#' "$bini"
printf 'pw-two-7a1b\n' >"$DIR/pw"
kill -HUP "$bpid"
wait_for 30 grep -qE "reload: [0-9]+ parties, [0-9]+ routes in force" "$DIR/broker.log" || bad "$what: no reload"
for t in "max_frame changed from 24MiB to 32MiB" "verify_threads changed from" \
	"heartbeat changed from 5s to 7s" "tsa_password_file: the password changed"; do
	[ "$(grep -cF "reload: $t" "$DIR/broker.log")" = 1 ] ||
		bad "$what: not one warning 'reload: $t': $(grep reload "$DIR/broker.log")"
done
grep -q "reload: .*max_frame.*restart" "$DIR/broker.log" || bad "$what: no 'restart'"
! grep -qE "pw-one-9f3c|pw-two-7a1b" "$DIR/broker.log" || bad "$what: the password is in the log"
what="a reload that moves the access record to a folder"
sed -i -e "s#^access_log = .*#access_log = $DIR/folder#" "$bini"
kill -HUP "$bpid"
wait_for 30 grep -q "the old one stays in force" "$DIR/broker.log" || bad "$what: not refused"
n2=$(grep -c '"program":"rete-broker"' "$alog")
read_log
expect 0
[ "$(grep -c '"program":"rete-broker"' "$alog")" -gt "$n2" ] || bad "$what: the read is not in the record in force"
stop_all

[ "$FAILS" = 0 ] || exit 1
echo "ok"
