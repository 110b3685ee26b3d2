#!/usr/bin/env bash
# scripts/demo.sh [--dir DIR] — a sample rete network on this machine.
#
# Installs what is missing, builds, then in DIR (default: a new temporary
# folder, printed at the end and left in place) creates the keys and the
# configurations of a district network — social services, the job centre,
# the health authority's family counselling clinic, a family centre, a
# coordinator and a regional auditor — starts the broker and the four
# agencies' agents, and plays one family's story through the spool folders.
# The agencies' side is played by the hook scripts of examples/hooks/.
# At the end it prints the coordinator's view, the period report, the case's
# timeline, one referral's evidence bundle with its story (time-stamped by a
# local stand-in TSA, cosigned by the four agencies' agents as witnesses),
# and the audit of the log, and stops every process it started.
#
# DIR layout (the contract of DESIGN.md): DIR/keys/ID.{key,pub},
# DIR/broker/broker.ini, DIR/broker/store/, DIR/agents/ID/agent.ini with its
# spool folders, DIR/coord.ini, DIR/audit.ini. Logs: DIR/**/*.log.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--dir)
		[ $# -ge 2 ] || { echo "demo.sh: --dir needs a folder" >&2; exit 2; }
		dir=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "demo.sh: unknown argument '$1'; usage: scripts/demo.sh [--dir DIR]" >&2
		exit 2
		;;
	esac
done

say() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

if [ -n "${RETE_BIN:-}" ]; then
	# The test suite runs the demo with the programs it has just built.
	bin=$RETE_BIN
else
	say "Installing what is missing and building"
	"$root/scripts/setup"
	cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$root/build" -j"$(nproc)" >"${TMPDIR:-/tmp}/rete-demo-build.log" 2>&1 ||
		{ cat "${TMPDIR:-/tmp}/rete-demo-build.log"; exit 2; }
	bin=$root/build/bin
fi
export PATH="$bin:$PATH"
note "programs: $bin"

if [ -z "$dir" ]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/rete-demo-XXXXXX")
else
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# Replace what an earlier run left here (only the demo's own parts).
	rm -rf "$dir/keys" "$dir/broker" "$dir/agents" "$dir/coord.ini" "$dir/audit.ini" \
		"$dir/audit-state.json" "$dir/send.log" "$dir/tsa" "$dir/witnesses.policy" \
		"$dir/evidence.log" "$dir"/evidence-*.json
fi

pids=()
stop_all() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_all EXIT

# free_port: a TCP port on 127.0.0.1 nobody listens on.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12768)) # below 32768, where the kernel's
		# ephemeral ports begin: a port some connection holds as its own
		# end answers no probe, yet cannot be bound
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "demo.sh: no free TCP port found on 127.0.0.1" >&2
	return 1
}

# wait_until SECONDS CODE LOG WHAT CMD...: runs CMD until it succeeds; after
# SECONDS says "demo.sh: WHAT; see LOG", shows the end of LOG and exits CODE.
wait_until() {
	local end=$((SECONDS + $1)) code=$2 log=$3 what=$4
	shift 4
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $end ]; then
			echo "demo.sh: $what; see $log" >&2
			tail -n 20 "$log" >&2
			exit "$code"
		fi
		sleep 0.2
	done
}

agencies=(social.mantova cpi.mantova asst.mantova family.mantova)
parties=(broker.mantova "${agencies[@]}" coord.mantova audit.region)

say "Creating keys and configuration in $dir"
mkdir -p "$dir/keys" "$dir/broker" "$dir/agents"
for id in "${parties[@]}"; do
	rete keygen "$id" --out "$dir/keys" >/dev/null
done
note "keys: ${parties[*]}"

listen_port=$(free_port)
events_port=$(free_port)
while [ "$events_port" = "$listen_port" ]; do events_port=$(free_port); done
listen="tcp://127.0.0.1:$listen_port"
events="tcp://127.0.0.1:$events_port"

# The example configuration, with this run's ports and time limits short
# enough for one referral to become overdue while you watch.
sed -e "s#^listen = .*#listen = $listen#" \
	-e "s#^events = .*#events = $events#" \
	-e "s#^routine = .*#routine = 10s   ; demo: 5wd in real life#" \
	-e "s#^urgent = .*#urgent = 10s    ; demo: 1wd in real life#" \
	-e "s#^;checkpoint_interval = .*#checkpoint_interval = 2s#" \
	"$root/examples/broker.ini" >"$dir/broker/broker.ini"
# A stand-in for a time-stamping authority (RFC 3161): the test TSA built
# with rete, with a test CA it makes here (rete-test-tsa --make-ca, with
# openssl; the tests make theirs the same way). In production the broker
# asks a qualified TSA (docs/operations.md, "Trusted time"); the broker's
# part is the same. Skipped when the test TSA program is not there (an installed
# package does not ship it).
tsa_ca=""
if command -v rete-test-tsa >/dev/null 2>&1; then
	rete-test-tsa --make-ca "$dir/tsa" --name 'rete demo' || exit 2
	rete-test-tsa --cert "$dir/tsa/tsa.pem" --key "$dir/tsa/tsa.key" --dir "$dir/tsa/state" \
		>"$dir/tsa/port" 2>"$dir/tsa/tsa.log" &
	pids+=($!)
	wait_until 10 2 "$dir/tsa/tsa.log" "the demo TSA did not start" grep -q '^port ' "$dir/tsa/port"
	tsa_port=$(awk '/^port /{print $2; exit}' "$dir/tsa/port")
	tsa_ca=$dir/tsa/ca.pem
	# the [broker] section: the TSA's URL and CA
	sed -i -e "/^\[broker\]/a tsa_url = http://127.0.0.1:$tsa_port/tsa\ntsa_ca = $tsa_ca" \
		"$dir/broker/broker.ini"
	note "a demo time-stamping authority on 127.0.0.1:$tsa_port (test CA $tsa_ca)"
fi
rete-broker -c "$dir/broker/broker.ini" --check-config >/dev/null

for id in "${agencies[@]}"; do
	mkdir -p "$dir/agents/$id"
	sed -e "s#^broker = .*#broker = $listen#" \
		-e "s#^;on_message = .*#on_message = $root/examples/hooks/$id.sh $dir/agents/$id/agent.ini#" \
		-e "s#^;poll = .*#poll = 200ms#" \
		-e "/^\[agent\]/a witness = 1s   ; demo: 30s in real life" \
		"$root/examples/agents/$id.ini" >"$dir/agents/$id/agent.ini"
done
sed -e "s#^broker = .*#broker = $listen#" -e "s#^events = .*#events = $events#" \
	"$root/examples/coord.ini" >"$dir/coord.ini"
sed -e "s#^broker = .*#broker = $listen#" "$root/examples/audit.ini" >"$dir/audit.ini"

say "Starting the broker and the agents"
rete-broker -c "$dir/broker/broker.ini" --init >"$dir/broker/broker.log" 2>&1 &
pids+=($!)
note "rete-broker (pid $!) on $listen, events on $events"

wait_until 20 2 "$dir/broker/broker.log" "the broker did not answer within 20 s" \
	rete monitor -c "$dir/coord.ini" --once --json

for id in "${agencies[@]}"; do
	rete-agent -c "$dir/agents/$id/agent.ini" >"$dir/agents/$id/agent.log" 2>&1 &
	pids+=($!)
	note "rete-agent $id (pid $!)"
done

say "The story: social services refer one family"
social="$dir/agents/social.mantova/agent.ini"
for f in referral-mother referral-family referral-son; do
	out=$(rete send -c "$social" "$root/examples/demo/$f.json" --wait 30 2>>"$dir/send.log") ||
		{ echo "demo.sh: $f was not accepted: $out" >&2; exit 1; }
	note "$f.json -> $(jq -r '"receipt: log index \(.index), message \(.messageId)"' <<<"$out")"
	if [ "$f" = referral-mother ]; then mother_id=$(jq -r .messageId <<<"$out"); fi
done
note "mother -> job centre (employment orientation, routine)"
note "family -> family centre (parenting support, routine)"
note "son    -> clinic (psychological support, urgent)"
note "the agencies' hooks now answer: the job centre accepts, books, signs the"
note "service agreement and completes; the clinic rejects for lack of capacity;"
note "social services re-refer the son to the family centre's teen group, which"
note "accepts; the parenting-support referral stays unanswered until overdue."

# Wait until the story has played out: one completed, one rejected, the
# re-referral accepted, one overdue.
state=""
deadline=$((SECONDS + 60))
while :; do
	view=$(rete monitor -c "$dir/coord.ini" --once --json 2>/dev/null || true)
	state=$(jq -r '[.statusTotals.completed, .statusTotals.rejected,
		.statusTotals.accepted, (.overdue | length)] | @tsv' <<<"$view" 2>/dev/null || true)
	if [ "$state" = "$(printf '1\t1\t1\t1')" ]; then
		break
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "demo.sh: the story did not finish within 60 s (completed, rejected, accepted, overdue = $state)" >&2
		echo "logs: $dir/broker/broker.log, $dir/agents/*/agent.log" >&2
		exit 1
	fi
	sleep 0.5
done

say "The coordinator's view (rete monitor --once)"
rete monitor -c "$dir/coord.ini" --once

# --- the web console (rete console; issue 16) -------------------------------------
# Started beside the others, so it stops with them (stop_all); its address is
# printed for the coordinator's browser while the demo runs.
rm -f "$dir/console.log"
console_port=$(free_port)
say "The web console (rete console)"
rete console -c "$dir/coord.ini" --listen "127.0.0.1:$console_port" >"$dir/console.log" 2>&1 &
pids+=($!)
wait_until 20 1 "$dir/console.log" "the console did not start within 20 s" \
	grep -q "serving" "$dir/console.log"
note "open http://127.0.0.1:$console_port/ in a browser (Panoramica, Salute; Italian,"
note "English by the switch); it runs while the demo runs and stops with it"
# --- end of the web console ---------------------------------------------------------

say "The broker's health (rete health)"
rete health -c "$dir/coord.ini" || true

today=$(TZ=Europe/Rome date +%F)
say "The period report (rete report --from $today --to $today --by agency,service)"
rete report -c "$dir/coord.ini" --from "$today" --to "$today" --by agency,service --format csv

say "The case's timeline (rete audit timeline --case mn-2026-0173)"
rete audit timeline "$dir/broker/store" --case mn-2026-0173

say "The regional auditor verifies at a distance (rete audit verify --broker)"
rete audit verify -c "$dir/audit.ini" --state "$dir/audit-state.json"

say "Evidence of one referral (rete evidence export / verify)"
# The auditor exports, at a distance, the evidence bundle of the mother's
# referral: the signed message, the sender's key as the directory states
# it, the Delivery with the job centre's signed acknowledgement, their
# proofs to a signed checkpoint, the consistency with the latest one.
# Anyone holding the broker's public key checks it offline.
# Every agency's agent is a witness: it checks each checkpoint against the
# last one it verified and cosigns it. The auditor's policy: all four.
rete witnesses -c "$dir/audit.ini" >"$dir/witnesses.policy"
verify_opts=(--broker-key "$dir/keys/broker.mantova.pub" --witnesses "$dir/witnesses.policy")
if [ -n "$tsa_ca" ]; then verify_opts+=(--tsa-ca "$tsa_ca"); fi
bundle=$dir/evidence-$mother_id.json
# The newest checkpoint waits a moment for its cosignatures and its token.
export_verified() {
	rete evidence export social.mantova "$mother_id" -c "$dir/audit.ini" \
		-o "$bundle" 2>>"$dir/evidence.log" &&
		rete evidence verify "$bundle" "${verify_opts[@]}" >>"$dir/evidence.log" 2>&1
}
wait_until 45 1 "$dir/evidence.log" "no evidence bundle of $mother_id verified within 45 s" \
	export_verified
note "rete witnesses -c audit.ini > witnesses.policy"
note "rete evidence export social.mantova $mother_id -c audit.ini -o evidence-$mother_id.json"
note "rete evidence verify evidence-$mother_id.json --broker-key keys/broker.mantova.pub --witnesses witnesses.policy${tsa_ca:+ --tsa-ca tsa/ca.pem}"
rete evidence verify "$bundle" "${verify_opts[@]}" --lang en
rete evidence verify "$bundle" "${verify_opts[@]}" --lang it

say "Stopping every process the demo started"
stop_all
note "stopped"

say "The audit (rete audit verify)"
rete audit verify "$dir/broker/store" --broker-key "$dir/keys/broker.mantova.pub"

say "Done"
note "the network's folder: $dir"
note "look at the spool folders: $dir/agents/*/spool/{sent,inbox}"
note "run it again with: scripts/demo.sh --dir $dir"
