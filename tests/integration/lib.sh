# lib.sh — what the shell integration tests share, sourced by them:
#
#   . "$(dirname "$0")/lib.sh"
#   itest_init TAG        DIR a fresh folder ${TMPDIR:-/tmp}/rete-TAG.XXXXXX,
#                         PIDS empty, BIN the build's bin/, and on exit
#                         every process in PIDS stopped and DIR removed
#   fail MESSAGE          says FAIL: MESSAGE and the end of every *.log in
#                         DIR (three folders deep), then exits 1
#   bad MESSAGE           says FAIL: MESSAGE and counts it in FAILS: for a
#                         test that goes on after a failure, and fails at
#                         the end when FAILS > 0
#   wait_for SECONDS CMD  runs CMD until it succeeds (0) or SECONDS pass (1)
#   stop_all              stops the processes in PIDS (and empties it)
#   free_port [TAKEN...]  a TCP port of 127.0.0.1 nothing listens on, none
#                         of TAKEN (the ports this test already chose: it
#                         runs in $(...), so it cannot remember them)
#   run CMD...            runs CMD: its exit code in rc, its output (stdout
#                         and stderr) in out
#   expect RC TEXT...     the last run exited RC and printed every TEXT
#                         (else bad, naming $what, the step)
#   lacks TEXT...         the last run printed none of TEXT (else bad)
#
# and the small network most of them run (rete.test/mantova, ipc sockets in
# DIR/broker): make_keys, broker_ini, agencies_ini, coord_only_ini,
# agent_ini, coord_ini, start_broker, start_agents, start_tsa, tsa_ini,
# need_faketime, start_broker_faketime, set_clock, stop_pid, inbox_has,
# send_referral, console_users, console_faketime, serve_console. A test
# that must do more on exit defines
# before_cleanup (it runs first). Waits poll with deadlines (no sleep as
# synchronisation). Safe under `set -e` and `set -u`.
#
# A process started again into the log of the one before (`cmd >LOG 2>&1 &`)
# and then waited for by a line in LOG: empty LOG first (`: >LOG`). The >
# of a background command is done by the forked child when it runs, and on
# a loaded machine the test's next line may read LOG before it, finding the
# line the process before wrote (session 13: two flakes of this kind).

# itest_init TAG: see above.
itest_init() {
	BIN=${RETE_BIN:?set RETE_BIN to the bin folder of the build}
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/rete-$1.XXXXXX")
	PIDS=()
	FAILS=0
	trap cleanup EXIT
}

# stop_all stops every process in PIDS: SIGTERM, and SIGKILL (said so) for
# one still running after 10 s, so that the test ends either way.
stop_all() {
	local p end=$((SECONDS + 10))
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do
			sleep 0.1 # polling another process's exit
		done
		if kill -0 "$p" 2>/dev/null; then
			echo "warning: process $p did not stop on SIGTERM; killed" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
}

cleanup() {
	if declare -F before_cleanup >/dev/null; then
		before_cleanup || true
	fi
	stop_all
	rm -rf "$DIR"
}

fail() {
	local f
	echo "FAIL: $*" >&2
	while IFS= read -r f; do
		echo "---- $f ----" >&2
		tail -n 30 "$f" >&2
	done < <(find "$DIR" -maxdepth 3 -name '*.log' -type f 2>/dev/null | sort)
	exit 1
}

bad() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

# wait_for SECONDS COMMAND...: run COMMAND until it succeeds or time runs out.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $end ]; then
			return 1
		fi
		sleep 0.1 # polling another process's state: nothing to wait on
	done
	return 0
}

# free_port [TAKEN...]: a TCP port of 127.0.0.1 nothing listens on now and
# none of TAKEN (1 after 200 tries). Called as $(free_port ...), a subshell:
# it cannot remember what it gave before, so a test that needs two ports
# names the first when it asks for the second (two free ports drawn at
# random are the same one time in 12,768).
free_port() {
	local p t taken
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12768)) # below 32768, where the kernel's
		# ephemeral ports begin: a port some connection holds as its own
		# end answers no probe, yet cannot be bound
		taken=false
		for t in "$@"; do [ "$t" = "$p" ] && taken=true; done
		$taken && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# run CMD...: see above.
run() {
	out=$("$@" 2>&1)
	rc=$?
}

# expect RC TEXT...: see above.
expect() {
	local want=$1
	shift
	[ "$rc" = "$want" ] || bad "$what: exit $rc, expected $want; output: $out"
	for t in "$@"; do
		grep -qF -- "$t" <<<"$out" || bad "$what: no '$t' in: $out"
	done
}

# lacks TEXT...: see above.
lacks() {
	for t in "$@"; do
		! grep -qF -- "$t" <<<"$out" || bad "$what: '$t' should not be printed: $out"
	done
}

# --- the network ------------------------------------------------------------------

# make_keys ID...: a key pair per party in DIR/keys.
make_keys() {
	local id
	mkdir -p "$DIR/keys"
	for id in "$@"; do
		"$BIN/rete" keygen "$id" --out "$DIR/keys" >/dev/null || fail "keygen $id"
	done
}

# broker_ini < MORE: DIR/broker/broker.ini, broker.mantova of
# rete.test/mantova on ipc sockets in DIR/broker, its store in
# DIR/broker/store; MORE (standard input) follows in its [broker] section.
broker_ini() {
	mkdir -p "$DIR/broker"
	{
		cat <<EOT
[broker]
origin = rete.test/mantova
id = broker.mantova
key = ../keys/broker.mantova.key
listen = ipc://$DIR/broker/broker.sock
events = ipc://$DIR/broker/events.sock
data = store
EOT
		cat
	} >"$DIR/broker/broker.ini"
}

# coord_only_ini: the section of coord.mantova alone and one route, for
# broker_ini's standard input (a network of the coordinator's console only).
coord_only_ini() {
	cat <<EOT

[agency coord.mantova]
name = Coordinamento
kind = coordinator
key = ../keys/coord.mantova.pub

[policy]
routes = social-services>job-centre
EOT
}

# agencies_ini SOCIAL-NAME: the sections of social.mantova (named
# SOCIAL-NAME), cpi.mantova and coord.mantova, the routes between the first
# two, and an emergency limit of 3 s, for broker_ini's standard input.
agencies_ini() {
	cat <<EOT

[limits]
emergency = 3s

[agency social.mantova]
name = $1
kind = social-services
key = ../keys/social.mantova.pub
services = family-support

[agency cpi.mantova]
name = Centro per l'Impiego
kind = job-centre
key = ../keys/cpi.mantova.pub
services = employment-orientation, training-voucher

[agency coord.mantova]
name = Coordinamento
kind = coordinator
key = ../keys/coord.mantova.pub

[policy]
routes = social-services>job-centre, job-centre>social-services
EOT
}

# agent_ini ID...: DIR/agents/ID/agent.ini for the agent of each ID
# (spool/ and data/ in its folder, polling every 200 ms).
agent_ini() {
	local id
	for id in "$@"; do
		mkdir -p "$DIR/agents/$id"
		cat >"$DIR/agents/$id/agent.ini" <<EOT
[agent]
id = $id
key = ../../keys/$id.key
broker = ipc://$DIR/broker/broker.sock
broker_key = ../../keys/broker.mantova.pub
spool = spool
data = data
poll = 200ms
EOT
	done
}

# coord_ini < MORE: DIR/coord.ini, the coordinator's [client] section;
# MORE (standard input) follows it.
coord_ini() {
	{
		cat <<EOT
[client]
id = coord.mantova
key = keys/coord.mantova.key
broker = ipc://$DIR/broker/broker.sock
broker_key = keys/broker.mantova.pub
events = ipc://$DIR/broker/events.sock
EOT
		cat
	} >"$DIR/coord.ini"
}

# start_broker [SECONDS]: rete-broker --init on DIR/broker/broker.ini (its
# output in DIR/broker.log), and a wait until it answers the coordinator's
# `rete monitor --once` (20 s unless given).
start_broker() {
	"$BIN/rete-broker" -c "$DIR/broker/broker.ini" --init >"$DIR/broker.log" 2>&1 &
	PIDS+=($!)
	wait_for "${1:-20}" "$BIN/rete" monitor -c "$DIR/coord.ini" --once ||
		fail "the broker did not answer"
}

# start_agents ID...: rete-agent for each (output in DIR/ID.log), and a wait
# until each has made its spool.
start_agents() {
	local id
	for id in "$@"; do
		"$BIN/rete-agent" -c "$DIR/agents/$id/agent.ini" >"$DIR/$id.log" 2>&1 &
		PIDS+=($!)
	done
	for id in "$@"; do
		wait_for 20 test -d "$DIR/agents/$id/spool/outbox" || fail "agent $id did not start"
	done
}

# start_tsa NAME: a time-stamping authority for the broker: a test CA and
# TSA certificate named NAME in DIR/tsa (rete-test-tsa --make-ca, with
# openssl), served by rete-test-tsa on a free port, TSA_PORT (its output in
# DIR/tsa.log).
start_tsa() {
	"$BIN/rete-test-tsa" --make-ca "$DIR/tsa" --name "$1" 2>"$DIR/openssl.log" ||
		fail "the test TSA's certificates: $(cat "$DIR/openssl.log")"
	"$BIN/rete-test-tsa" --cert "$DIR/tsa/tsa.pem" --key "$DIR/tsa/tsa.key" --dir "$DIR/tsa/state" \
		>"$DIR/tsa/port" 2>"$DIR/tsa.log" &
	PIDS+=($!)
	wait_for 20 grep -q '^port ' "$DIR/tsa/port" || fail "the test TSA did not start"
	TSA_PORT=$(awk '/^port /{print $2; exit}' "$DIR/tsa/port")
}

# tsa_ini: the [broker] lines that make the broker ask start_tsa's TSA,
# for broker_ini's standard input.
tsa_ini() {
	printf 'tsa_url = http://127.0.0.1:%s/tsa\ntsa_ca = %s\n' "$TSA_PORT" "$DIR/tsa/ca.pem"
}

# need_faketime: FT, libfaketime's multi-thread library (scripts/setup
# installs faketime), or fail.
need_faketime() {
	FT=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1)
	[ -n "$FT" ] || fail "libfaketime is not installed (scripts/setup installs faketime)"
}

# start_broker_faketime [OFFSET]: start_broker (need_faketime first) under
# libfaketime, whose offset DIR/faketime.rc holds (OFFSET, "+0" unless
# given, to begin with; see set_clock); the monotonic and boot clocks stay
# true, and so are the file times it reads (NO_FAKE_STAT: the broker's own
# clock is what sets its state file's time, as on a machine whose clock is
# wrong). BROKER: its pid.
start_broker_faketime() {
	echo "${1:-+0}" >"$DIR/faketime.rc"
	LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/faketime.rc" FAKETIME_NO_CACHE=1 \
		FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" start_broker
	BROKER=${PIDS[-1]}
}

# set_clock OFFSET: start_broker_faketime's broker's clock from now on
# (libfaketime's offsets: "+0", "-3d", "+6d").
set_clock() {
	echo "$1" >"$DIR/faketime.rc.tmp" && mv "$DIR/faketime.rc.tmp" "$DIR/faketime.rc"
}

# stop_pid PID WHAT: SIGTERM to PID (one of PIDS) and a wait until it is
# gone, or fail naming WHAT.
stop_pid() {
	kill "$1" 2>/dev/null
	wait_for 30 sh -c "! kill -0 $1 2>/dev/null" || fail "$2 did not stop"
}

# inbox_has ID N: agent ID has at least N files in its inbox/.
inbox_has() {
	[ "$(find "$DIR/agents/$1/spool/inbox" -name '*.json' | wc -l)" -ge "$2" ]
}

# send_referral ID [PRIORITY [EXTRA]]: a referral from social.mantova to
# cpi.mantova (routine unless PRIORITY; EXTRA: more members of the file,
# each followed by a comma), sent with `rete send --wait 30` (receipted,
# queued or delivered), or fail.
send_referral() {
	printf '%s\n' "{\"id\": \"$1\", ${3:-}\"operator\": {\"staffId\": \"as-1\", \"role\": \"social-worker\"},
 \"recipient\": \"cpi.mantova\", \"caseId\": \"mn-2026-0901\",
 \"referral\": {\"service\": \"employment-orientation\", \"priority\": \"${2:-routine}\", \"reasonCode\": \"long-term-unemployment\",
   \"consent\": {\"basis\": \"consent\", \"givenAt\": \"2026-11-20T09:30:00Z\"}, \"ageBand\": \"adult\"},
 \"private\": {\"person\": {\"name\": \"Maria Rossi\"}}}" >"$DIR/$1.json"
	"$BIN/rete" send -c "$DIR/agents/social.mantova/agent.ini" "$DIR/$1.json" --wait 30 >"$DIR/send.out" 2>&1 ||
		fail "referral $1 was not accepted: $(cat "$DIR/send.out")"
}

# console_cert: DIR/console.crt and DIR/console.key (0600), a self-signed
# certificate for 127.0.0.1, for a console with TLS.
console_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$DIR/console.key" -out "$DIR/console.crt" >/dev/null 2>&1 || fail "openssl req"
	chmod 600 "$DIR/console.key"
}

# console_users [USER...]: the keys, broker.ini, and coord.ini with
# "[console] users = console-users"; each USER's account made with the
# password "USER has a long password" (or fail).
console_users() {
	make_keys broker.mantova coord.mantova
	coord_only_ini | broker_ini
	printf '\n[console]\nusers = console-users\n' | coord_ini
	local u
	for u in "$@"; do
		printf '%s has a long password\n' "$u" |
			"$BIN/rete" console passwd "$u" -c "$DIR/coord.ini" >"$DIR/p.out" 2>&1 ||
			fail "passwd $u: $(cat "$DIR/p.out")"
	done
}

# console_faketime: the next serve_console runs under libfaketime (need_faketime
# first), its clock offset in DIR/faketime.rc ("+0"; see set_clock).
console_faketime() {
	echo "+0" >"$DIR/faketime.rc"
	CONSOLE_ENV=(LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/faketime.rc" FAKETIME_NO_CACHE=1
		FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
}

# serve_console [NAME]: rete console of DIR/NAME.ini (coord unless given)
# on a free port of 127.0.0.1, plain HTTP (loopback), run under env with
# CONSOLE_ENV (an array, may be unset) before it; its output in
# DIR/NAME.log, its PID in CONSOLE_PID (and PIDS), its address in URL; fails
# unless it serves within 30 s.
serve_console() {
	local name=${1:-coord}
	env ${CONSOLE_ENV[@]+"${CONSOLE_ENV[@]}"} "$BIN/rete" console -c "$DIR/$name.ini" \
		--listen 127.0.0.1:0 >"$DIR/$name.log" 2>&1 &
	CONSOLE_PID=$!
	PIDS+=($CONSOLE_PID)
	wait_for 30 grep -q "serving coord.mantova's view at http://127.0.0.1:[0-9]*/" "$DIR/$name.log" ||
		fail "the console of $name.ini did not start: $(cat "$DIR/$name.log")"
	URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/$name.log" | head -n 1)
}
