#!/usr/bin/env bash
# test_demo.sh — runs scripts/demo.sh with the programs just built and checks
# the story's outcome (statuses, the overdue referral, the audit), not just
# its exit code; then that nothing it started is still running.
set -euo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
dir=$(mktemp -d "${TMPDIR:-/tmp}/rete-test-demo-XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$RETE_SOURCE_DIR/scripts/demo.sh" --dir "$dir/net" 2>&1) || { echo "$out"; fail "demo.sh exited non-zero"; }
for want in "The coordinator's view" "Overdue referrals" "The period report" "The case's timeline" "broker health: OK" "holds up to its checkpoint" "verified "; do
	grep -qF "$want" <<<"$out" || { echo "$out"; fail "the demo's output lacks '$want'"; }
done

# The evidence bundle of the mother's referral verified and told its story,
# in English and in Italian.
grep -qF "the evidence holds" <<<"$out" || { echo "$out"; fail "the demo's evidence bundle did not verify"; }
grep -qF "la prova regge" <<<"$out" || { echo "$out"; fail "the demo's evidence story in Italian is missing"; }
# ... time-stamped by the demo's TSA and cosigned by all four agencies
grep -qF "timestamped by CN=rete demo TSA" <<<"$out" || { echo "$out"; fail "the demo's evidence is not time-stamped"; }
grep -qF "cosigned by 4 of 4 witnesses" <<<"$out" || { echo "$out"; fail "the demo's evidence is not cosigned by the four agencies"; }
ls "$dir"/net/evidence-*.json >/dev/null || fail "the demo wrote no evidence bundle"

# The web console was started and its address printed (issue 16); it is
# stopped with the rest (below).
grep -qE "open http://127\.0\.0\.1:[0-9]+/ in a browser" <<<"$out" || { echo "$out"; fail "the demo did not print the console's address"; }

# Nothing the demo started is still running.
if pgrep -f "$dir/net" >/dev/null; then
	pgrep -af "$dir/net" >&2
	fail "processes of the demo are still running"
fi

# The log verifies on its own, after the demo.
rete audit verify "$dir/net/broker/store" --broker-key "$dir/net/keys/broker.mantova.pub" >/dev/null ||
	fail "rete audit verify failed on the demo's store"

# The story's outcome, from the store: four referrals; the job centre's
# completed successfully; the clinic's rejected for lack of capacity; the
# re-referral accepted and linked; the parenting-support one overdue.
today=$(TZ=Europe/Rome date +%F)
yesterday=$(TZ=Europe/Rome date -d yesterday +%F)
rep=$(rete report --store "$dir/net/broker/store" --from "$yesterday" --to "$today" --by service --format json --min-count 1)
val() { jq -r --arg s "$1" ".groups[] | select(.service == \$s) | .$2" <<<"$rep"; }
[ "$(jq '[.groups[].sent] | add' <<<"$rep")" = 4 ] || { echo "$rep"; fail "expected 4 referrals sent"; }
[ "$(val employment-orientation completedSuccessful)" = 1 ] || { echo "$rep"; fail "job centre referral not completed successfully"; }
[ "$(val psychological-support 'rejectedByReason["lack-of-capacity"]')" = 1 ] || { echo "$rep"; fail "clinic referral not rejected for lack of capacity"; }
[ "$(val teen-group accepted)" = 1 ] || { echo "$rep"; fail "teen-group re-referral not accepted"; }
[ "$(val parenting-support overdue)" = 1 ] || { echo "$rep"; fail "parenting-support referral not overdue"; }

# The re-referral is linked to the rejected one.
rejected=$(rete audit log "$dir/net/broker/store" | jq -r 'select(.kind == "update" and .status == "rejected") | .referralId')
linked=$(jq -r '.message.referral.previousReferral // empty' "$dir"/net/agents/family.mantova/spool/inbox/*-referral.json | sort -u | grep -v '^$' || true)
[ -n "$rejected" ] && [ "$rejected" = "$linked" ] || fail "re-referral not linked to the rejected referral ($rejected vs $linked)"

# The person's data reached the job centre, in its inbox, and nowhere in the broker's store.
grep -q "RSSMRA85M41E897X" "$dir"/net/agents/cpi.mantova/spool/inbox/*-referral.json || fail "the job centre cannot read the person's data"
if grep -rqa "RSSMRA85M41E897X\|Maria Rossi" "$dir/net/broker/store"; then
	fail "personal data found in the broker's store"
fi
# Only codes in the log (protocol 3): the clinic's and the job centre's
# sentences reached social services sealed, and are nowhere at the broker
# nor in what the demo printed (monitor, report, timeline, audit).
for text in "No psychologist free for new cases before February." "Enrolled in a training course."; do
	grep -qF "$text" "$dir"/net/agents/social.mantova/spool/inbox/*-update.json ||
		fail "social services did not get the sealed text '$text'"
	if grep -rqaF "$text" "$dir/net/broker"; then
		fail "the sealed text '$text' is in the broker's folder"
	fi
	if grep -qF "$text" <<<"$out"; then
		fail "the demo's output shows the sealed text '$text'"
	fi
done
echo "demo: 1 passed, 0 failed"
