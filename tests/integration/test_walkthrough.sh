#!/usr/bin/env bash
# test_walkthrough.sh — docs/operations.md "First network by hand" is run as
# written (issue 17): every fenced block marked "sh walkthrough" is taken
# from the page, in order, and run in one bash (set -euo pipefail) in a
# temporary folder with the programs just built first on the PATH. The
# ports of the page (7700, 7701, 9464, 9465) are replaced by free ones, so
# that parallel tests do not meet; nothing else is changed. Any command
# that fails fails the test; then what the walkthrough did is checked: a
# broker and two agencies brought up by hand, the referral and its answer
# delivered, the metrics counting them, the audit and the backup verified.
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
# lib.sh for free_port only: this test keeps its own folder, bad and
# cleanup (defined below, over lib.sh's)
. "$(dirname "$0")/lib.sh"
page=$RETE_SOURCE_DIR/docs/operations.md
dir=$(mktemp -d "${TMPDIR:-/tmp}/rete-test-walkthrough-XXXXXX")
failures=0
cleanup() {
	if [ "${RETE_KEEP:-}" ]; then
		echo "kept $dir" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
bad() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# 1. the blocks, in order (a block is the lines between "```sh walkthrough"
#    and the next "```")
awk '
	/^```sh walkthrough[[:space:]]*$/ { inside = 1; n++; printf "\n# --- block %d (docs/operations.md line %d)\n", n, NR; next }
	inside && /^```[[:space:]]*$/ { inside = 0; next }
	inside { print }
	END { if (inside) { print "unterminated block" > "/dev/stderr"; exit 1 } }
' "$page" >"$dir/blocks.sh" || {
	echo "FAIL: docs/operations.md: a walkthrough block is not closed" >&2
	exit 1
}
nblocks=$(grep -c '^# --- block ' "$dir/blocks.sh")
if [ "$nblocks" -lt 8 ]; then
	echo "FAIL: docs/operations.md has $nblocks blocks marked 'sh walkthrough' (the first network by hand needs its keys, broker.ini, first start, agents, referral, status, audit and backup)" >&2
	exit 1
fi
# the steps the page must keep (a block unmarked by mistake would silently
# drop them from the test)
for step in 'rete keygen' 'rete-broker -c broker.ini --check-config --init' \
	'rete-broker -c broker.ini --init' 'rete-agent -c' 'rete send' 'rete status' \
	'rete health' 'rete audit verify' 'rete store backup' '/metrics'; do
	grep -qF -- "$step" "$dir/blocks.sh" || bad "the walkthrough blocks no longer run '$step'"
done

# 2. free ports in place of the page's (a port nobody answers on now), four
#    different ones: free_port runs in $(...), so the ports already chosen
#    are named to it
taken=()
sedargs=()
for p in 7700 7701 9464 9465; do
	q=$(free_port "${taken[@]}") || {
		echo "FAIL: no free port found" >&2
		exit 1
	}
	taken+=("$q")
	sedargs+=(-e "s/\\b$p\\b/$q/g")
done
{
	echo 'set -euo pipefail'
	# whatever the page left running is stopped when the run ends, however
	# it ends (SIGTERM from ctest's timeout too)
	echo 'trap '\''exit 143'\'' TERM'
	echo 'trap '\''for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done; wait'\'' EXIT'
	sed "${sedargs[@]}" "$dir/blocks.sh"
} >"$dir/run.sh"

# 3. run it
cd "$dir" || exit 1
PATH="$RETE_BIN:$PATH" timeout 600 bash "$dir/run.sh" >"$dir/out.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	echo "FAIL: the walkthrough stopped with exit $rc; its output:" >&2
	tail -n 60 "$dir/out.log" >&2
	for f in broker.log social.log cpi.log; do
		[ -f "$dir/first-network/$f" ] && { echo "--- $f" >&2; tail -n 20 "$dir/first-network/$f" >&2; }
	done
	failures=$((failures + 1))
	exit 1
fi

# 4. what it did
net=$dir/first-network
out=$(cat "$dir/out.log")
n=$(ls "$net"/agents/cpi.mantova/spool/inbox/*-referral.json 2>/dev/null | wc -l)
[ "$n" -eq 1 ] || bad "the job centre's inbox holds $n referrals, expected 1"
n=$(ls "$net"/agents/social.mantova/spool/inbox/*-update.json 2>/dev/null | wc -l)
[ "$n" -eq 1 ] || bad "social services' inbox holds $n updates, expected the acceptance"
grep -q '"status": *"accepted"\|accepted' <<<"$out" || bad "rete status never showed the referral accepted"
grep -q '^rete_broker_submissions_accepted_total 2$' <<<"$out" ||
	bad "the broker's metrics did not count 2 accepted submissions (the referral and the update)"
grep -q '^rete_agent_connected 1$' <<<"$out" || bad "the job centre's agent metrics did not say connected"
grep -q '^rete_agent_spool_files{folder="inbox"} 2$' <<<"$out" ||
	bad "the job centre's agent metrics did not count its 2 inbox files (the referral, the delivery receipt of its update)"
grep -q '^verified [0-9]* entries' <<<"$out" || bad "rete audit verify did not say 'verified N entries'"
grep -q '^verified the copy backup/store-' <<<"$out" || bad "the backup's --verify did not verify the copy"
ls -d "$net"/backup/store-* >/dev/null 2>&1 || bad "no backup folder was made"
grep -q 'fine' <<<"$out" || bad "no --check-config said fine"
grep -q 'stopped: log size' "$net/broker.log" || bad "the broker did not stop cleanly"
if [ "$failures" -gt 0 ]; then
	echo "--- the walkthrough's output" >&2
	cat "$dir/out.log" >&2
	exit 1
fi
echo "the walkthrough ran: $nblocks blocks"
exit 0
