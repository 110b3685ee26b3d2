#!/usr/bin/env bash
# test_cli_errors.sh — what `rete` says when it is given something wrong
# (review of session 11): every usage error says what was wrong before the
# usage; an unexpected argument is named; a message file that is not JSON
# is named once; a wrong pinned broker key is suspected in the sentence of
# a broker that does not answer; an impossible --quorum is the option's
# fault, not a line of a file; and the help texts and rete(1) list what the
# commands do (rete console passwd, rete store backup --verify, the exit
# codes of rete send).
#
#   usage       rete send without -c, with a second file, --wait abc,
#               --wait -5, -c without a value, a lone '-', a missing or
#               unreadable file (the first line "rete send: ..."); rete status and rete monitor
#               with an extra argument; rete health -c without a value;
#               rete sar --person without a value; rete, rete message,
#               rete audit, rete evidence and rete store without their
#               (sub)command: exit 2, a sentence first (not "usage:"),
#               naming the argument.
#   send JSON   rete send on a file that is not JSON: exit 1, the file
#               named once in the line that says where the JSON breaks.
#   broker key  rete health, rete status and rete audit verify -c with broker_key the
#               key of another party (the CURVE handshake never completes,
#               so the broker seems silent): the sentence names broker_key.
#   status      rete status with the agent stopped and 3 files queued by
#               rete send: the first line says the agent is not running and
#               3 files wait in outbox/ (agentRunning, outboxWaiting in
#               --json); the agent running, outbox/ empty: neither said.
#   quorum      rete witnesses --quorum 5 with 2 agencies: exit 2, says
#               --quorum and how many agencies there are, no "line".
#   no store    rete audit verify, rete checkpoint and rete store backup
#               on a folder without a store: exit 2, the sentence says a
#               log is made only by a broker started with --init (not
#               "on first start": the broker refuses without --init).
#   help        rete --help lists `rete console passwd`; rete send --help
#               has an exit-code line; rete.1.scd documents store backup
#               --verify and --broker-key.
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
src=$RETE_SOURCE_DIR
. "$(dirname "$0")/lib.sh"
itest_init test-cli-errors
R=$BIN/rete

# sentence_first: the first line of the output is a sentence of rete, not
# the usage
sentence_first() {
	local first
	first=$(head -n 1 <<<"$out")
	case "$first" in
	rete:* | "rete "*:*) ;;
	*) bad "$what: the first line is not a sentence saying what was wrong: $first" ;;
	esac
}

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
broker_ini < <(agencies_ini "Servizi sociali")
coord_ini </dev/null
agent_ini social.mantova
agent=$DIR/agents/social.mantova/agent.ini
cp "$src/examples/messages/referral.json" "$DIR/ok.json"

# --- usage errors -----------------------------------------------------------------
what="send without -c"
run "$R" send "$DIR/ok.json"
expect 2 "-c agent.ini" "usage: rete send"
sentence_first
what="send with a second file"
run "$R" send -c "$agent" "$DIR/ok.json" "$DIR/other.json"
expect 2 "'$DIR/other.json'" "usage: rete send"
sentence_first
what="send --wait abc"
run "$R" send -c "$agent" "$DIR/ok.json" --wait abc
expect 2 "'abc'" "--wait"
sentence_first
what="send --wait -5"
run "$R" send -c "$agent" "$DIR/ok.json" --wait -5
expect 2 "--wait -5" "1 to 86400"
sentence_first
what="send -c without a value"
run "$R" send "$DIR/ok.json" -c
expect 2 "-c needs"
sentence_first
what="status with an extra argument"
run "$R" status -c "$agent" ref-1 extra-arg
expect 2 "'extra-arg'"
sentence_first
what="status without -c"
run "$R" status
expect 2 "-c agent.ini"
sentence_first
what="monitor with an extra argument"
run "$R" monitor -c "$DIR/coord.ini" --once extra-arg
expect 2 "'extra-arg'"
sentence_first
what="health -c without a value"
run "$R" health -c
expect 2 "-c needs"
lacks "unexpected argument '-c'"
sentence_first
for c in "" message audit evidence store; do
	what="rete $c without a subcommand"
	run "$R" $c
	expect 2 "usage:"
	sentence_first
done
what="sar --person without a value"
run "$R" sar -c "$agent" --person
expect 2 "--person needs"
sentence_first

what="send on a missing file"
run "$R" send -c "$agent" "$DIR/nothere.json"
expect 2 "$DIR/nothere.json" "nothing was queued"
sentence_first
what="send on a folder (unreadable as a file)"
mkdir -p "$DIR/afolder"
run "$R" send -c "$agent" "$DIR/afolder"
expect 2 "$DIR/afolder" "nothing was queued"
sentence_first
what="send - (standard input is not read)"
run "$R" send -c "$agent" - </dev/null
expect 2 "'-'" "usage: rete send"
sentence_first
[ -z "$(ls -A "$DIR/agents/social.mantova/spool/outbox" 2>/dev/null)" ] || bad "$what: something was queued"

# --- rete send on a file that is not JSON ----------------------------------------
what="send on a file that is not JSON"
printf '{"id": x}\n' >"$DIR/bad.json"
run "$R" send -c "$agent" "$DIR/bad.json"
expect 1 "line 1, column"
lacks "bad.json: $DIR/bad.json" "bad.json: bad.json"
[ "$(grep -o "bad.json" <<<"$(grep -F "line 1, column" <<<"$out")" | wc -l)" = 1 ] ||
	bad "$what: the line naming where the JSON breaks names the file more than once: $out"
[ ! -e "$DIR/agents/social.mantova/spool/outbox/bad.json" ] || bad "$what: it was queued"

# --- a wrong pinned broker key --------------------------------------------------
start_broker
sed -e "s#^broker_key = .*#broker_key = keys/cpi.mantova.pub#" "$DIR/coord.ini" >"$DIR/wrongkey.ini"
echo "timeout = 1s" >>"$DIR/wrongkey.ini"
what="health with the wrong broker_key"
run "$R" health -c "$DIR/wrongkey.ini"
expect 2 "did not answer" "broker_key"
# (rev-edges s13, 7) a broker that runs but does not answer in time (here
# stopped with SIGSTOP, as one whose main thread waits on a slow disk):
# the sentence names that cause too, not only the configuration
cp "$DIR/coord.ini" "$DIR/busy.ini"
echo "timeout = 1s" >>"$DIR/busy.ini"
kill -STOP "${PIDS[0]}"
what="health with the broker too busy to answer"
run "$R" health -c "$DIR/busy.ini"
busy_health_rc=$rc busy_health_out=$out
what="status with the broker too busy to answer"
run "$R" status -c "$agent" REF-1 --timeout 1
kill -CONT "${PIDS[0]}"
expect 1 "did not answer" "too busy to answer (a slow or full disk)"
what="health with the broker too busy to answer"
rc=$busy_health_rc out=$busy_health_out
expect 2 "did not answer" "too busy to answer: a slow or full disk"
what="monitor with the wrong broker_key"
run "$R" monitor -c "$DIR/wrongkey.ini" --once
expect 2 "broker_key"
what="status with the wrong broker_key"
sed -e "s#^broker_key = .*#broker_key = ../../keys/cpi.mantova.pub#" "$agent" >"$DIR/agents/social.mantova/wrongkey.ini"
run "$R" status -c "$DIR/agents/social.mantova/wrongkey.ini" REF-1 --timeout 1
expect 1 "did not answer" "broker_key"
what="audit verify -c with the wrong broker_key"
run "$R" audit verify -c "$DIR/wrongkey.ini" --state "$DIR/audit.state"
expect 2 "broker_key"

# --- rete status: the agent stopped, files waiting in outbox/ (s13 rev-edges #4) --
# With the agent stopped and three files queued by `rete send`, status says
# first that the agent is not running and that 3 files wait in outbox/
# (agentRunning false, outboxWaiting 3 in --json); with the agent running
# again and outbox/ emptied, it says nothing of either (true, 0).
outbox=$DIR/agents/social.mantova/spool/outbox
outbox_empty() { [ -z "$(ls -A "$outbox" | grep -v '^\.')" ]; }
start_agents social.mantova
apid=${PIDS[-1]}
# st N: ok.json as referral st-N, in DIR/st-N.json
st() { sed -e "s/\"social.mantova-2026-0001\"/\"st-$1\"/" "$DIR/ok.json" >"$DIR/st-$1.json"; }
st 0
what="send --wait, the agent running"
run "$R" send -c "$agent" "$DIR/st-0.json" --wait 60
expect 0
kill "$apid"
wait "$apid" 2>/dev/null
unset 'PIDS[-1]'
for i in 1 2 3; do
	st $i
	run "$R" send -c "$agent" "$DIR/st-$i.json"
	[ "$rc" = 0 ] || bad "send st-$i with the agent stopped: exit $rc: $out"
done
what="status, the agent stopped, 3 files in outbox/"
run "$R" status -c "$agent" --timeout 5
expect 0 "social.mantova: the agent is not running" "3 files in outbox/ wait to be sent" "st-0"
case $(head -n 1 <<<"$out") in
*"the agent is not running"*) ;;
*) bad "$what: the first line does not say the agent is not running: $out" ;;
esac
what="status --json, the agent stopped, 3 files in outbox/"
run "$R" status -c "$agent" --json --timeout 5
expect 0 '"agentRunning": false' '"outboxWaiting": 3'
start_agents social.mantova
wait_for 60 outbox_empty || bad "the agent did not send the 3 files: $(ls -A "$outbox")"
what="status, the agent running, nothing waiting"
run "$R" status -c "$agent" --timeout 5
expect 0 "st-3"
lacks "not running" "outbox/"
what="status --json, the agent running, nothing waiting"
run "$R" status -c "$agent" --json --timeout 5
expect 0 '"agentRunning": true' '"outboxWaiting": 0'

# --- witnesses: an impossible quorum ---------------------------------------------
what="witnesses --quorum 5 (2 agencies)"
run "$R" witnesses "$DIR/broker/store" --broker-key "$DIR/keys/broker.mantova.pub" --quorum 5
expect 2 "--quorum 5" "2 agencies"
lacks "line"
what="witnesses --quorum 2 (2 agencies)"
run "$R" witnesses "$DIR/broker/store" --broker-key "$DIR/keys/broker.mantova.pub" --quorum 2
expect 0 "quorum 2"

# --- a folder without a store: how a log comes to be (eyes12 #8) ----------------
mkdir -p "$DIR/nostore"
for cmd in "audit verify" checkpoint "store backup"; do
	what="$cmd on a folder without a store"
	case $cmd in
	"audit verify") run "$R" audit verify "$DIR/nostore" --broker-key "$DIR/keys/broker.mantova.pub" ;;
	checkpoint) run "$R" checkpoint "$DIR/nostore" ;;
	*) run "$R" store backup "$DIR/nostore" "$DIR/nostore-backup" ;;
	esac
	expect 2 "no store there" "started once with --init"
	lacks "on first start"
done

# --- help and man page ------------------------------------------------------------
what="rete --help"
run "$R" --help
expect 0 "rete console passwd"
what="rete send --help"
run "$R" send --help
expect 0 "Exit codes:"
what="rete.1.scd: rete store"
grep -qF -- "--verify" <(sed -n '/^## rete store/,/^## /p' "$src/docs/man/rete.1.scd") ||
	bad "docs/man/rete.1.scd: the section 'rete store' has no --verify"
grep -qF -- "--broker-key" <(sed -n '/^## rete store/,/^## /p' "$src/docs/man/rete.1.scd") ||
	bad "docs/man/rete.1.scd: the section 'rete store' has no --broker-key"
grep -qF -- "Exit" <(sed -n '/^## rete send/,/^## /p' "$src/docs/man/rete.1.scd") ||
	bad "docs/man/rete.1.scd: the section 'rete send' has no exit codes"

[ "$FAILS" -eq 0 ] || exit 1
echo "test_cli_errors: all passed"
