#!/usr/bin/env bash
# test_broker_config.sh — what broker.ini says is what the broker does
# (session 11's review of the broker).
#
#   access record  access_log a folder, one of the broker's own files (the
#                  state file, store/data.mdb, broker.ini, a key), the
#                  default DATA.access.log a folder: --check-config exit 2,
#                  with a sentence; under a file (cannot be written): a
#                  WARNING, exit 0. The start with a record it cannot write
#                  starts, logs it (path, cause), and refuses reads ("this
#                  read was not made") until the record can be written.
#                  At run time each change (failing, working, failing again
#                  within the minute) is logged at once; repeats are
#                  counted, and the count is written by the next line (a
#                  reload's too) or at the stop: every read refused is in
#                  the log, on its own line or counted. A start
#                  with access_log = store.state refuses the reads and
#                  never writes in the state file.
#   reload         a SIGHUP that changes max_frame, verify_threads,
#                  heartbeat or tsa_password_file logs one warning each,
#                  naming the key, the running and the new value (never the
#                  password) and "restart"; timestamp_grace 4h -> 240m (the
#                  same value) does not. One that changes only data (no
#                  access_log) keeps the record beside the data in force,
#                  and logs the move; one that moves the record to a folder
#                  is taken, with a warning, and reads are refused.
#   durations      what main accepted starts (heartbeat 1d, expiry 1000d,
#                  redeliver 2d, checkpoint_interval 2d, timestamp_grace
#                  1000d); heartbeat 9d (ZeroMQ's int of ms overflows) is
#                  refused with the bound (8d) and the reason; each
#                  calendar-duration key says what was wrong and what it
#                  accepts: a missing unit, wd (never offered as an
#                  example), zero (timestamp_grace: "off"), a number too
#                  large.
#   paths          state a folder, state in a missing folder, an ipc://
#                  endpoint in a missing folder, state and an ipc://
#                  endpoint under /proc: --check-config exit 2; an
#                  access_log in /proc: a WARNING (tests/unit/
#                  test_fileplace.c judges more places).
#   BOM            broker.ini saved with a UTF-8 byte order mark is fine;
#                  saved as UTF-16: one problem saying so; a BOM inside a
#                  line: named. A Windows-1252 byte in a value: its line,
#                  section and key, and "save the file as UTF-8" (not the
#                  directory's field path); in a comment: fine.
#   lines          the listen host check and a key shared by two parties
#                  cite the key's own line.
#   values         tsa_url with port 99999, an unclosed or empty bracket
#                  (refused, the sentence whole), an empty port (accepted:
#                  the scheme's own); an agent's on_message with an
#                  unterminated quote (sh would refuse every hook); one
#                  with a comment (# at a word's start) whose text has one.
#   rete status    a broker refusing reads (its access record): said, with
#                  the broker's sentence; one referral not in the store:
#                  exit 2; the list (no REFID) and a referral in the store:
#                  the agency's own record, the refusal said (brokerError
#                  in --json), exit 0.
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
# (a record the broker cannot write never keeps it down: --check-config
# warns, exit 0; a folder or one of the broker's own files is a mistake in
# the file: a problem; the start is below, at run time)
mkdir -p "$DIR/folder"
touch "$DIR/afile"
what="access_log a folder"
with "access_log = $DIR/folder"
check
expect 2 "[broker] access_log" "is a folder"
what="access_log under a file"
with "access_log = $DIR/afile/access.log"
check
expect 0 "WARNING" "[broker] access_log" "$DIR/afile" "not a folder" "this read was not made" "fine"
what="the default access_log, a folder"
cp "$bini.orig" "$bini"
sed -i -e "/^access_log = /d" "$bini"
mkdir "$DIR/broker/store.access.log"
check
expect 2 "[broker] access_log" "$DIR/broker/store.access.log" "is a folder"
rmdir "$DIR/broker/store.access.log"
for own in store.state store/data.mdb broker.ini ../keys/broker.mantova.key ../keys/cpi.mantova.pub; do
	what="access_log = $own (a file of the broker)"
	mkdir -p "$DIR/broker/store"
	[ -e "$DIR/broker/$own" ] || touch "$DIR/broker/$own"
	with "access_log = $own"
	check
	expect 2 "[broker] access_log" "the broker's own"
done
# a file of LMDB's or of the journal's (store schema 4) in the store
# folder is the broker's own; a new file there (0.7.0 recorded reads
# there) is a WARNING: a restore replaces the folder, and with it the
# record
mkdir -p "$DIR/broker/store"
for own in lock.mdb journal.0 journal.1; do
	touch "$DIR/broker/store/$own"
	what="access_log = store/$own"
	with "access_log = store/$own"
	check
	expect 2 "[broker] access_log" "the broker's own"
	rm -f "$DIR/broker/store/$own"
done
rm -f "$DIR/broker/store/data.mdb"
what="access_log = store/access.log (as on 0.7.0)"
with "access_log = store/access.log"
check
expect 0 "WARNING" "[broker] access_log" "store folder" "restore" "fine"
rm -rf "$DIR/broker/store" "$DIR/broker/store.state"

# --- durations ---------------------------------------------------------------
what="heartbeat 9d"
with "heartbeat = 9d"
check
expect 2 "[broker] heartbeat: '9d'" "at most 8d" "ZeroMQ"
what="heartbeat 8d (0.7.0 took it)"
with "heartbeat = 8d"
check
expect 0 "fine"
what="durations main accepted (an upgrade)"
with "heartbeat = 1d" "expiry = 1000d" "redeliver = 2d" "checkpoint_interval = 2d" \
	"tsa_url = http://127.0.0.1:9/tsa" "tsa_ca = $DIR/ca.pem" "timestamp_grace = 1000d"
check
expect 0 "fine"
what="checkpoint_interval without a unit"
with "checkpoint_interval = 2"
check
expect 2 "[broker] checkpoint_interval: '2' has no unit" "s, m, h or d"
lacks "unit ''" "wd"
for key in checkpoint_interval expiry tsa_timeout timestamp_grace clock_grace redeliver heartbeat; do
	extra=()
	[ $key = timestamp_grace ] && extra=("tsa_url = http://127.0.0.1:9/tsa" "tsa_ca = $DIR/ca.pem")
	for v in 1wd 3x 99999999999d; do
		what="$key = $v"
		with "${extra[@]}" "$key = $v"
		check
		expect 2 "[broker] $key: '$v'" "s, m, h or d"
		lacks "3wd" "or wd" "e.g. off"
		[ $key = timestamp_grace ] || [ $key = clock_grace ] && expect 2 "or off"
		[ $v = 99999999999d ] && expect 2 "too large" "at most"
		[ $v = 99999999999d ] && [ $key != heartbeat ] && [ $key != tsa_timeout ] && expect 2 "10000000009"
	done
done
for v in off 1s 2h; do
	what="clock_grace = $v"
	with "clock_grace = $v"
	check
	expect 0 "fine"
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
what="state file read-only (replaced by a rename: the folder is what counts)"
touch "$DIR/ro.state"; chmod 0444 "$DIR/ro.state"
with "state = $DIR/ro.state"
check
expect 0 "fine"
rm -f "$DIR/ro.state"
what="state in a missing folder"
with "state = $DIR/nonexistent/x.state"
check
expect 2 "[broker] state" "$DIR/nonexistent" "does not exist"
what="listen in a missing folder"
with "listen = ipc://$DIR/nonexist/dir/sock"
check
expect 2 "[broker] listen" "$DIR/nonexist/dir" "does not exist"
# the kernel's /proc: root "may write" there (access(2)), yet no file can
# be made in it; the clients' check always said so, the broker's did not
what="state under /proc"
with "state = /proc/rete-test.state"
check
expect 2 "[broker] state: the folder /proc is on the kernel's proc file system"
what="listen under /proc"
with "listen = ipc:///proc/rete-test.sock"
check
expect 2 "[broker] listen: 'ipc:///proc/rete-test.sock': the folder /proc is on the kernel's proc file system"
what="access_log a file of /proc"
with "access_log = /proc/self/comm"
check
expect 0 "WARNING" "[broker] access_log" "/proc/self/comm is on the kernel's proc file system"

# --- BOM, lines, values --------------------------------------------------------------
what="a byte order mark"
cp "$bini.orig" "$bini"
printf '\xef\xbb\xbf' | cat - "$bini.orig" >"$bini"
check
expect 0 "fine"
what="broker.ini saved as UTF-16"
iconv -f UTF-8 -t UTF-16 "$bini.orig" >"$bini"
check
expect 2 "UTF-16" "UTF-8" "1 problem;"
what="a byte order mark inside the file"
cp "$bini.orig" "$bini"
sed -i -e "s#^origin = #\xef\xbb\xbforigin = #" "$bini"
check
expect 2 "byte order mark" "U+FEFF"
lacks "unknown key"
what="a Windows-1252 byte in a value"
cp "$bini.orig" "$bini"
sed -i -e "s#^name = Centro per l'Impiego#name = Centro per l'Impiego \xe8#" "$bini"
nline=$(grep -an "^name = Centro per l'Impiego" "$bini" | cut -d: -f1)
check
expect 2 "broker.ini:$nline: [agency cpi.mantova] name: byte 0xE8 at column 29 is not UTF-8" \
	"save the file as UTF-8" "1 problem;"
lacks "Message.directory" "parties["
what="a Windows-1252 byte after a UTF-8 accented letter: the column counts characters"
cp "$bini.orig" "$bini"
sed -i -e "s#^name = Centro per l'Impiego#name = Centro per l'Impiego à \xe8#" "$bini"
check
expect 2 "broker.ini:$nline: [agency cpi.mantova] name: byte 0xE8 at column 31 is not UTF-8"
what="a Windows-1252 byte in a comment"
cp "$bini.orig" "$bini"
printf '; Citt\xe0 di Mantova\n' >>"$bini"
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
what="tsa_url with an unclosed bracket"
with "tsa_url = https://[::1" "tsa_ca = $DIR/ca.pem"
check
expect 2 "[broker] tsa_url: 'https://[::1'" "no ']' closes the IPv6 address"
what="tsa_url with empty brackets"
with "tsa_url = https://[]:318/" "tsa_ca = $DIR/ca.pem"
check
expect 2 "[broker] tsa_url: 'https://[]:318/'" "no address"
for u in "https://[::1]:8080/tsa" "http://tsa.example:318/x" "https://tsa.example/tsa" \
	"https://tsa.example:/tsa"; do
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
# an unquoted # at the start of a word begins sh's comment: its quote is no quote
what="on_message with a comment"
sed -i -e "s%^on_message = .*%on_message = /bin/true # the agency's hook%" "$aini"
run rete-agent --check-config -c "$aini"
lacks "on_message"
what="on_message with a # inside a word"
sed -i -e "s%^on_message = .*%on_message = /bin/true a#'b%" "$aini"
run rete-agent --check-config -c "$aini"
expect 2 "[agent] on_message: the single quote at character 13" "not closed"

# --- at run time: the access record, a reload ----------------------------------
# The durations main accepted start (heartbeat 1d: 3 x 1d in ms fits an
# int). The record is a folder at the start: the broker starts (deliveries
# matter more), says so, and refuses reads until the record can be written.
cp "$bini.orig" "$bini"
printf 'pw-one-9f3c\n' >"$DIR/pw"
chmod 600 "$DIR/pw"
sed -i -e "s#^\\[broker\\]\$#[broker]\\ntsa_url = http://127.0.0.1:9/tsa\\ntsa_ca = $DIR/ca.pem\\ntsa_user = u\\ntsa_password_file = $DIR/pw\\ntimestamp_grace = 4h\\nheartbeat = 1d\\nexpiry = 1000d\\nredeliver = 2d\\ncheckpoint_interval = 2d#" "$bini"
rm -rf "$DIR/broker/store"
alog=$DIR/broker/access.log
mkdir "$alog"
# (not start_broker: rete monitor reads the log, which this broker refuses)
"$BIN/rete-broker" -c "$bini" --init >"$DIR/broker.log" 2>&1 &
PIDS+=($!)
bpid=${PIDS[0]}
wait_for 20 grep -q "rete-broker info: started:" "$DIR/broker.log" ||
	fail "the broker did not start: $(cat "$DIR/broker.log")"
export RETE_ACCESS_LOG=$DIR/cli-access.log
read_log() { run timeout 60 rete audit timeline -c "$DIR/coord.ini" --case c-1; }
# refused: the last read was not made, and the client was told
refused() {
	[ "$rc" != 0 ] || bad "$what: a read was served (exit 0): $out"
	grep -qF "this read was not made" <<<"$out" || bad "$what: the client was not told: $out"
}
# nref counts the reads the broker refuses (one query each: a refused
# rete audit timeline stops at it); every one must be in the broker's log,
# said on its own line or counted in a later one (said_refused)
nref=0
said_refused() {
	local lines counts
	lines=$(grep -c "was not made, and no read is" "$DIR/broker.log")
	counts=$(grep -oE "[0-9]+ more [a-z ]*refused" "$DIR/broker.log" | awk '{ n += $1 } END { print n + 0 }')
	[ $((lines + counts)) = "$nref" ] ||
		bad "$what: $nref reads refused, the log says $lines one by one and counts $counts: $(grep 'access record' "$DIR/broker.log")"
}
what="a start with a record that cannot be written"
grep -q "access record.*$alog.*reads" "$DIR/broker.log" ||
	bad "$what: the log does not name the record and what it means: $(cat "$DIR/broker.log")"
read_log
refused
nref=$((nref + 1))
rmdir "$alog"
what="a read"
read_log
expect 0
n1=$(grep -c '"program":"rete-broker"' "$alog")
[ "$n1" -ge 1 ] || bad "$what: not in the broker's access record"
what="a read the broker cannot record"
rm -f "$alog"
mkdir "$alog"
read_log
refused
nref=$((nref + 1))
rmdir "$alog"
what="a read once the record can be written again"
read_log
expect 0
[ -f "$alog" ] && [ "$(grep -c '"program":"rete-broker"' "$alog")" -ge 1 ] ||
	bad "$what: not recorded"
what="a failure again within the minute"
rm -f "$alog"
mkdir "$alog"
read_log
read_log
read_log
refused
nref=$((nref + 3))
nfail=$(grep -c "reads refused" "$DIR/broker.log")
[ "$nfail" -ge 3 ] || bad "$what: each failure (start, twice at run time) is not logged: $(grep 'access record' "$DIR/broker.log")"
last=$(grep "access record" "$DIR/broker.log" | tail -1)
grep -q "reads refused" <<<"$last" || bad "$what: the log's last word on the record is: $last"
# rete status: a broker that refuses reads is neither "unknown referral"
# nor reachable with nothing to say
sed -i -e "/^on_message = /d" "$aini"
what="rete status REFID, the broker refusing reads"
run timeout 60 rete status -c "$aini" c-404
expect 2 "the broker refused" "this read was not made"
lacks "known neither"
nref=$((nref + 1))
rmdir "$alog"
read_log
expect 0
# rete status in list mode (no REFID) with a referral in the agency's store:
# the statuses are the agency's own record, the broker's refusal is said
# with its sentence (brokerError in --json), exit 0 (docs/agent.md)
what="a referral sent while the record can be written"
start_agents social.mantova
apid=${PIDS[-1]}
cat >"$DIR/ref.json" <<'EOT'
{"id": "c-list-1", "operator": {"staffId": "as-1", "role": "social-worker"},
 "recipient": "cpi.mantova", "caseId": "mn-2026-0999",
 "referral": {"service": "employment-orientation", "priority": "routine",
   "reasonCode": "long-term-unemployment",
   "consent": {"basis": "consent", "givenAt": "2026-11-20T09:30:00Z"}, "ageBand": "adult"},
 "private": {"person": {"name": "Maria Rossi", "fiscalCode": "RSSMRA85M41E897X"}}}
EOT
run timeout 60 rete send -c "$aini" "$DIR/ref.json" --wait 30
expect 0
# the agent stops (its witness would read the log too)
kill "$apid"
wait "$apid" 2>/dev/null
PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}")
what="rete status (list), the record can be written"
run timeout 60 rete status -c "$aini"
expect 0 "c-list-1" "broker: "
lacks "refused"
rm -f "$alog"
mkdir "$alog"
what="rete status (list), the broker refusing reads"
run timeout 60 rete status -c "$aini"
expect 0 "c-list-1" "the broker refused to give its status" "this read was not made"
lacks "broker: " "did not answer"
what="rete status --json (list), the broker refusing reads"
run timeout 60 rete status -c "$aini" --json
expect 0 '"id": "c-list-1"' '"brokerError": ' "this read was not made"
lacks '"broker": {'
what="rete status REFID in the store, the broker refusing reads"
run timeout 60 rete status -c "$aini" c-list-1
expect 0 "c-list-1" "the broker refused to give its status" "this read was not made"
nref=$((nref + 3)) # the list, --json, c-list-1
rmdir "$alog"
read_log
expect 0

what="a reload that changes what needs a restart"
sed -i -e "s#^\\[broker\\]\$#[broker]\\nmax_frame = 32MiB\\nverify_threads = 3#" -e "s#^heartbeat = 1d#heartbeat = 7s#" "$bini"
sed -i -e 's#^timestamp_grace = 4h#timestamp_grace = 240m#' "$bini"
printf 'pw-two-7a1b\n' >"$DIR/pw"
kill -HUP "$bpid"
wait_for 30 grep -qE "reload: [0-9]+ parties, [0-9]+ routes in force" "$DIR/broker.log" || bad "$what: no reload"
for t in "max_frame changed from 24MiB to 32MiB" "verify_threads changed from" \
	"heartbeat changed from 1d to 7s" "tsa_password_file: the password changed"; do
	[ "$(grep -cF "reload: $t" "$DIR/broker.log")" = 1 ] ||
		bad "$what: not one warning 'reload: $t': $(grep reload "$DIR/broker.log")"
done
grep -q "reload: .*max_frame.*restart" "$DIR/broker.log" || bad "$what: no 'restart'"
! grep -q "reload: timestamp_grace" "$DIR/broker.log" || bad "$what: 4h -> 240m (the same) warned"
! grep -qE "pw-one-9f3c|pw-two-7a1b" "$DIR/broker.log" || bad "$what: the password is in the log"

what="a reload that changes only data (the record follows the data in force)"
# refused before it, twice within the minute: the second is held, and the
# reload's line that the record is written counts it
rm -f "$alog"
mkdir "$alog"
read_log
refused
read_log
nref=$((nref + 2))
mkdir -p "$DIR/mig"
sed -i -e "/^access_log = /d" -e "s#^data = store#data = ../mig/store#" "$bini"
kill -HUP "$bpid"
reloads() { [ "$(grep -cE 'reload: [0-9]+ parties' "$DIR/broker.log")" = "$1" ]; }
wait_for 30 reloads 2 || bad "$what: no reload"
grep -qF "access record moves from $alog to $DIR/broker/store.access.log" "$DIR/broker.log" ||
	bad "$what: the move is not logged: $(grep reload "$DIR/broker.log")"
read_log
expect 0
[ -f "$DIR/broker/store.access.log" ] && [ ! -e "$DIR/mig/store.access.log" ] ||
	bad "$what: the read is not recorded beside the store in force: $(ls "$DIR/broker" "$DIR/mig")"

what="a reload that moves the access record to a folder"
sed -i -e "s#^\\[broker\\]\$#[broker]\\naccess_log = $DIR/folder#" "$bini"
kill -HUP "$bpid"
wait_for 30 reloads 3 || bad "$what: refused"
grep -qF "access record moves from $DIR/broker/store.access.log to $DIR/folder" "$DIR/broker.log" ||
	bad "$what: the move is not logged"
grep -q "reload: .*$DIR/folder.*is a folder" "$DIR/broker.log" || bad "$what: no warning"
read_log
refused
read_log
nref=$((nref + 2))
stop_all
what="the refused reads counted at the stop"
grep -qE "access record: [0-9]+ more" "$DIR/broker.log" ||
	bad "$what: not written: $(grep 'access record' "$DIR/broker.log")"
what="every refused read said or counted"
said_refused

what="a start with access_log = store.state (the broker's own file)"
cp "$bini.orig" "$bini"
sed -i -e "s#^access_log = .*#access_log = store.state#" "$bini"
# emptied here, not by the start's own >: the background child does that
# when it runs, and on a loaded machine the wait below read the broker's
# log before it, took the broker before's "started:" and looked for this
# start's line in the old log, or in the emptied one
: >"$DIR/broker.log"
"$BIN/rete-broker" -c "$bini" >"$DIR/broker.log" 2>&1 &
PIDS+=($!)
wait_for 20 grep -q "rete-broker info: started:" "$DIR/broker.log" ||
	fail "$what: the broker did not start: $(cat "$DIR/broker.log")"
grep -q "access record: .*store.state is one of the broker's own files" "$DIR/broker.log" ||
	bad "$what: the log does not say it: $(cat "$DIR/broker.log"); broker.ini: $(grep -E '^(access_log|state|data) ' "$bini"); ls: $(ls -la "$DIR/broker")"
read_log
refused
stop_all
! grep -q '"program"' "$DIR/broker/store.state" || bad "$what: the state file was written over"

[ "$FAILS" = 0 ] || exit 1
echo "ok"
