#!/usr/bin/env bash
# test_journal_live.sh — `rete store backup` and `rete-broker --check-config`
# (the unit's ExecReload) of a RUNNING broker under load (rev-jnlcheck,
# session 14): a batch in the journal for a moment before LMDB commits it
# is in flight, not a stuck batch or another store's journal. Referrals are
# dropped into the sender's outbox while both run in a loop; every backup
# and every check must succeed (a count of refusals == 0), and the backups
# made must verify.
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
. "$(dirname "$0")/lib.sh"
itest_init journal-live

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi Sociali" | broker_ini
coord_ini </dev/null
agent_ini social.mantova cpi.mantova
bini=$DIR/broker/broker.ini
store=$DIR/broker/store
outbox=$DIR/agents/social.mantova/spool/outbox

# drop P N: N referrals (ids P-1..P-N) into the sender's outbox
drop() {
	local i
	for i in $(seq 1 "$2"); do
		printf '%s\n' "{\"id\": \"$1-$i\", \"operator\": {\"staffId\": \"as-1\", \"role\": \"social-worker\"},
 \"recipient\": \"cpi.mantova\", \"caseId\": \"mn-2026-0901\",
 \"referral\": {\"service\": \"employment-orientation\", \"priority\": \"routine\", \"reasonCode\": \"long-term-unemployment\",
   \"consent\": {\"basis\": \"consent\", \"givenAt\": \"2026-11-20T09:30:00Z\"}, \"ageBand\": \"adult\"},
 \"private\": {\"person\": {\"name\": \"Maria Rossi\"}}}" >"$outbox/.$1-$i.tmp"
		mv "$outbox/.$1-$i.tmp" "$outbox/$1-$i.json"
	done
}

start_broker
start_agents social.mantova cpi.mantova
send_referral warm-1
total=1
refused=0 failed=0 rounds=0
for r in 1 2 3 4 5 6 7 8; do
	drop "r$r" 250
	total=$((total + 250))
	# while the outbox drains: a backup and a check, again and again
	while [ "$(find "$outbox" -name '*.json' | wc -l)" -gt 100 ]; do
		rounds=$((rounds + 1))
		if ! out=$("$BIN/rete" store backup "$store" "$DIR/bk" 2>&1); then
			refused=$((refused + 1))
			echo "backup refused (round $rounds): $out"
		elif [ $((rounds % 10)) = 1 ]; then
			"$BIN/rete" audit verify "$DIR/bk" --broker-key "$DIR/keys/broker.mantova.pub" \
				>"$DIR/verify.out" 2>&1 ||
				bad "the backup of round $rounds does not verify: $(cat "$DIR/verify.out")"
		fi
		rm -rf "$DIR/bk"
		if ! out=$("$BIN/rete-broker" -c "$bini" --check-config 2>&1); then
			failed=$((failed + 1))
			echo "--check-config failed (round $rounds): $out"
		fi
	done
done
echo "rounds=$rounds backup refused=$refused check-config failed=$failed"
[ "$rounds" -ge 20 ] || bad "only $rounds rounds ran under load"
[ "$refused" = 0 ] || bad "$refused of $rounds backups of the running broker were refused"
[ "$failed" = 0 ] || bad "$failed of $rounds --check-config of the running broker failed"
wait_for 120 inbox_has cpi.mantova "$total" ||
	bad "$(find "$DIR/agents/cpi.mantova/spool/inbox" -name '*.json' | wc -l) of $total delivered"
stop_all

[ "$FAILS" = 0 ] || exit 1
echo "test_journal_live: ok"
