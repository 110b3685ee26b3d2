#!/usr/bin/env bash
# test_key_rotation.sh — a party's key is rotated while the network runs.
# The broker pushes the new directory to connected agents (a fresh WELCOME
# after SIGHUP), so social services' agent, still connected, refuses to seal
# to the changed key (key-changed) instead of sealing to the old one; after
# an operator confirms the new key (--trust), the resent referral reaches
# the job centre's agent, which opens it with its new key; the log verifies
# across the rotation.
set -euo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
src=$RETE_SOURCE_DIR
. "$(dirname "$0")/lib.sh"
itest_init test-rotation

mkdir -p "$DIR/broker" "$DIR/agents"
make_keys broker.mantova social.mantova cpi.mantova asst.mantova family.mantova coord.mantova audit.region
lport=$(free_port) && eport=$(free_port "$lport") || fail "no free TCP port"
listen="tcp://127.0.0.1:$lport"
events="tcp://127.0.0.1:$eport"
sed -e "s#^listen = .*#listen = $listen#" -e "s#^events = .*#events = $events#" \
	"$src/examples/broker.ini" >"$DIR/broker/broker.ini"
for id in social.mantova cpi.mantova; do
	mkdir -p "$DIR/agents/$id"
	sed -e "s#^broker = .*#broker = $listen#" -e "s#^;poll = .*#poll = 200ms#" \
		"$src/examples/agents/$id.ini" >"$DIR/agents/$id/agent.ini"
done
social="$DIR/agents/social.mantova/agent.ini"
cpi="$DIR/agents/cpi.mantova/agent.ini"

rete-broker -c "$DIR/broker/broker.ini" --init >"$DIR/broker/broker.log" 2>&1 &
bpid=$!
PIDS+=($bpid)
rete-agent -c "$social" >"$DIR/agents/social.mantova/agent.log" 2>&1 &
PIDS+=($!)
rete-agent -c "$cpi" >"$DIR/agents/cpi.mantova/agent.log" 2>&1 &
cpid=$!
PIDS+=($cpid)

inbox_count() { ls "$DIR/agents/cpi.mantova/spool/inbox/" 2>/dev/null | grep -c -- '-referral.json$' || true; }
# inbox_has N: the job centre's inbox holds N referrals (counted afresh at
# every try of wait_for)
inbox_has() { [ "$(inbox_count)" = "$1" ]; }

# 1. Before the rotation: a referral reaches the job centre.
rete send -c "$social" "$src/examples/demo/referral-mother.json" --wait 30 >/dev/null 2>&1 ||
	fail "the first referral was not accepted"
wait_for 30 inbox_has 1 || fail "the first referral did not reach the job centre"

# 2. The job centre's key is rotated: new key, broker reloaded, agent restarted.
kill -TERM "$cpid"
wait "$cpid" || true
rete keygen cpi.mantova --out "$DIR/keys" --force >/dev/null
kill -HUP "$bpid"
wait_for 30 grep -q "directory 2\|serial 2" "$DIR/broker/broker.log" ||
	fail "the broker did not log the new directory after SIGHUP"
rete-agent -c "$cpi" >>"$DIR/agents/cpi.mantova/agent.log" 2>&1 &
PIDS+=($!)

# 3. Social services' agent, connected all along, learnt the new directory:
#    it refuses to seal to a key it did not pin.
rete send -c "$social" "$src/examples/demo/referral-mother.json" --wait 30 >/dev/null 2>&1 &&
	fail "a referral to a rotated key was sent without an operator's confirmation"
err=$(ls "$DIR"/agents/social.mantova/spool/failed/*.error.json 2>/dev/null | head -n 1)
[ -n "$err" ] || fail "no error file in social services' failed/"
[ "$(jq -r .code "$err")" = key-changed ] || fail "expected code key-changed, got: $(cat "$err")"

newkey=$(cat "$DIR/keys/cpi.mantova.pub")
# the key comes from the agency through another channel, never from the
# directory: the error neither shows it nor fills it into the command
! grep -qF "$newkey" "$err" || fail "the error fills in the directory's key: $(cat "$err")"
grep -qF "another channel" "$err" || fail "the error does not say to obtain the key through another channel: $(cat "$err")"
grep -qF -- "--key KEY" "$err" || fail "the error does not show the --trust command with a placeholder: $(cat "$err")"

# 4. The operator confirms the new key — only the one cpi.mantova gave them
#    (a different key is refused); the resent referral arrives and opens.
other=$(rete keygen someone.else --out "$DIR/other")
if rete-agent -c "$social" --trust cpi.mantova --key "$other" >/dev/null 2>&1; then
	fail "--trust confirmed a key other than the one given with --key"
fi
rete-agent -c "$social" --trust cpi.mantova --key "$newkey" >/dev/null || fail "--trust --key failed"
rete send -c "$social" "$src/examples/demo/referral-mother.json" --wait 30 >/dev/null 2>&1 ||
	fail "the referral was not accepted after --trust"
wait_for 30 inbox_has 2 || fail "the resent referral did not reach the job centre"
last=$(ls "$DIR"/agents/cpi.mantova/spool/inbox/*-referral.json | sort | tail -n 1)
[ "$(jq -r .private.person.fiscalCode "$last")" = RSSMRA85M41E897X ] ||
	fail "the job centre could not open the referral with its new key"
if grep -q "cannot-open\|delivery-refused" "$DIR"/agents/*/agent.log; then
	fail "a delivery was sealed to the old key"
fi

# 5. The log verifies across the rotation (old entries against the old key).
stop_all
rete audit verify "$DIR/broker/store" --broker-key "$DIR/keys/broker.mantova.pub" >/dev/null ||
	fail "rete audit verify failed after the rotation"
echo "key rotation: 1 passed, 0 failed"
