#!/usr/bin/env bash
# agent_syncs.sh — the fsync/fdatasync calls rete-agent makes per message,
# at the sender (social.mantova) and at the recipient (cpi.mantova), with
# the CPU time of each agent: N referrals naming a person (default 200)
# dropped into outbox/ at once, counted from the first file to the last
# delivery recorded in the sender's person index. Syscall counts are
# repeatable whatever else the machine does; the CPU times are not exact.
#
#   RETE_BIN=build/bin nice -n 19 bench/agent_syncs.sh [N]
#
# Not a test: run by hand, before and after a change to the agent's syncs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/integration/lib.sh"
N=${1:-200}
itest_init agent-syncs
make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi Sociali" | broker_ini
coord_ini </dev/null
agent_ini social.mantova cpi.mantova
start_broker
start_agents social.mantova cpi.mantova
pid_of() { pgrep -f -- "-c $DIR/agents/$1/agent.ini" | head -n1; }
wait_for 20 grep -q "connected to" "$DIR/social.mantova.log" || fail "social did not connect"
wait_for 20 grep -q "connected to" "$DIR/cpi.mantova.log" || fail "cpi did not connect"

# CPU ticks (utime + stime) of a process
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A tr pid t0
for id in social.mantova cpi.mantova; do
	pid[$id]=$(pid_of "$id")
	strace -f -qq -c -e trace=fsync,fdatasync -o "$DIR/$id.strace" -p "${pid[$id]}" &
	tr[$id]=$!
done
# strace is attached once it has printed nothing and the process is traced
for id in social.mantova cpi.mantova; do
	wait_for 10 grep -q "^TracerPid:[[:space:]]*[1-9]" "/proc/${pid[$id]}/status" ||
		fail "strace did not attach to $id"
	t0[$id]=$(ticks "${pid[$id]}")
done
out=$DIR/agents/social.mantova/spool/outbox
start=$(date +%s%N)
for i in $(seq 1 "$N"); do
	cat >"$out/.r$i.tmp" <<EOT
{"id": "sync-$i", "operator": {"staffId": "as-0042", "role": "social-worker"},
 "recipient": "cpi.mantova", "caseId": "mn-2026-0173",
 "referral": {"service": "employment-orientation", "priority": "routine",
  "reasonCode": "long-term-unemployment", "consent": {"basis": "consent",
  "givenAt": "2026-11-20T09:30:00Z", "reference": "CONS-2026-0412"}, "ageBand": "adult"},
 "private": {"person": {"name": "Maria Rossi", "fiscalCode": "RSSMRA85M41E897X"}}}
EOT
	mv "$out/.r$i.tmp" "$out/r$i.json"
done
idx=$DIR/agents/social.mantova/data/persons.jsonl
delivered() { [ "$(grep -c '"delivered":"sync-' "$idx" 2>/dev/null)" -ge "$N" ]; }
wait_for 300 delivered || fail "not every referral was delivered"
end=$(date +%s%N)
declare -A cpu
for id in social.mantova cpi.mantova; do
	cpu[$id]=$(($(ticks "${pid[$id]}") - t0[$id]))
	kill -INT "${tr[$id]}"
	wait "${tr[$id]}" 2>/dev/null || true
done
hz=$(getconf CLK_TCK)
echo "$N referrals, first file to last delivery recorded: $(((end - start) / 1000000)) ms"
for id in social.mantova cpi.mantova; do
	calls=$(awk '$NF == "fsync" || $NF == "fdatasync" {n[$NF] = $4} END {printf "fsync %d, fdatasync %d", n["fsync"], n["fdatasync"]}' "$DIR/$id.strace")
	total=$(awk '$NF == "fsync" || $NF == "fdatasync" {s += $4} END {print s + 0}' "$DIR/$id.strace")
	printf '%-15s %s: %s per message; CPU %d ms\n' "$id" "$calls" \
		"$(awk -v t="$total" -v n="$N" 'BEGIN {printf "%.2f", t / n}')" \
		$((cpu[$id] * 1000 / hz))
done
