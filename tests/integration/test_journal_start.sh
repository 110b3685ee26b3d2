#!/usr/bin/env bash
# test_journal_start.sh — the broker's start and --check-config with the
# store's journal (journal.0, journal.1) as an operator may leave it
# (rev-restore, session 14), with the real broker, agents and files.
#
#   hand restore   a backup's data.mdb copied over a folder whose journal
#                  is newer: --check-config (with --restore too) exit 2,
#                  naming the journal, as the start does.
#   missing        the journal files moved away (a copy of the .mdb files
#                  alone): --check-config and the start exit 2, "missing",
#                  saying --restore; the store is left as it was. With
#                  --restore: --check-config exit 0 (a note), the start
#                  goes on as epoch 2 and says why; the next plain start
#                  is plain.
#   overwritten    journal.0 of other bytes: the start exit 2, "not a
#                  journal".
#   raise          a schema-3 store where journal.1 cannot be made (a
#                  folder there): --check-config and the start exit 2; the
#                  schema stays 3, no journal.0 is left; then the start
#                  makes the files and logs the raise to schema 4.
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
. "$(dirname "$0")/lib.sh"
itest_init journal-start

make_keys broker.mantova social.mantova cpi.mantova coord.mantova
agencies_ini "Servizi Sociali" | broker_ini
coord_ini </dev/null
agent_ini social.mantova cpi.mantova
bini=$DIR/broker/broker.ini
store=$DIR/broker/store

# start_again [FLAG]: the broker on its existing store (output appended to
# DIR/broker.log), and a wait until it answers
start_again() {
	"$BIN/rete-broker" -c "$bini" ${1:+"$1"} >>"$DIR/broker.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "$BIN/rete" monitor -c "$DIR/coord.ini" --once ||
		fail "the broker did not answer: $(cat "$DIR/broker.log")"
}
# schema: the store's meta "schema" (hex dump: "schema" is 736368656d61; a
# printable dump, -p, does not load back when a random key's bytes happen
# to read as an escape: CI saw "mdb_load: failed to read key value")
schema() { mdb_dump -s meta "$store" | grep -A1 '^ 736368656d61$' | tail -n 1 | tr -d ' ' | sed 's/^0*//'; }
# size: the log size rete audit verify reads
size() { "$BIN/rete" audit verify "$store" --broker-key "$DIR/keys/broker.mantova.pub" | sed -n 's/^verified \([0-9]*\) entries.*/\1/p'; }

start_broker
start_agents social.mantova cpi.mantova
send_referral r-1
stop_all
[ -f "$store/journal.0" ] && [ -f "$store/journal.1" ] || fail "no journal files after a start"
"$BIN/rete" store backup "$store" "$DIR/bk1" >/dev/null 2>&1 || fail "rete store backup"
start_again
start_agents social.mantova cpi.mantova
send_referral r-2
send_referral r-3
stop_all
mkdir -p "$DIR/good"
cp -a "$store/." "$DIR/good/"
cp "$DIR/broker/store.state" "$DIR/good.state"
n=$(size)

what="hand restore: --check-config"
cp "$DIR/bk1/data.mdb" "$store/data.mdb"
run rete-broker -c "$bini" --check-config
expect 2 "journal"
what="hand restore: --restore --check-config"
run rete-broker -c "$bini" --restore --check-config
expect 2 "another store's" "out of the folder"
what="hand restore: --restore"
run timeout 60 rete-broker -c "$bini" --restore
expect 2 "another store's"
cp "$DIR/good/data.mdb" "$store/data.mdb"

what="missing: --check-config"
mkdir -p "$DIR/aside"
mv "$store/journal.0" "$store/journal.1" "$DIR/aside/"
run rete-broker -c "$bini" --check-config
expect 2 "journal.0 and journal.1 are missing" "--restore"
what="missing: the start"
run timeout 60 rete-broker -c "$bini"
expect 2 "journal.0 and journal.1 are missing" "Put back" "--restore"
[ "$(size)" = "$n" ] || bad "missing: the refused start changed the log ($(size), was $n)"
[ -e "$store/journal.0" ] && bad "missing: the refused start made journal.0"

what="overwritten: the start"
cp "$DIR/aside/journal.0" "$DIR/aside/journal.1" "$store/"
head -c 262144 /dev/urandom >"$store/journal.0"
run timeout 60 rete-broker -c "$bini"
expect 2 "journal.0 is not a journal" "--restore"
rm -f "$store/journal.0" "$store/journal.1"

what="missing: --restore --check-config"
run rete-broker -c "$bini" --restore --check-config
expect 0 "--restore:" "missing"
what="missing: --restore"
start_again --restore
grep -q "lost its journal" "$DIR/broker.log" || bad "$what: no 'lost its journal' in the log"
grep -q "epoch 2" "$DIR/broker.log" || bad "$what: no 'epoch 2' in the log"
stop_all
what="after --restore: a plain start"
: >"$DIR/broker.log"
start_again
stop_all
grep -q "error" "$DIR/broker.log" && bad "$what: $(grep error "$DIR/broker.log")"

what="raise"
rm -rf "$store"
mkdir -p "$store"
cp "$DIR/good/data.mdb" "$store/"
cp "$DIR/good.state" "$DIR/broker/store.state"
# schema 3, as an older broker left it, and no journal's mark
mdb_dump -s meta "$store" >"$DIR/meta.dump" || fail "mdb_dump"
sed -e '/^ 736368656d61$/{n;s/.*/ 00000003/}' "$DIR/meta.dump" | mdb_load -s meta "$store" ||
	fail "mdb_load: $(cat "$DIR/meta.dump")"
[ "$(schema)" = 3 ] || fail "raise: schema $(schema), expected 3"
mkdir "$store/journal.1"
what="raise: --check-config"
run rete-broker -c "$bini" --check-config
expect 2 "journal.1"
what="raise: the start"
run timeout 60 rete-broker -c "$bini"
expect 2 "journal.1" "older broker still opens it"
[ "$(schema)" = 3 ] || bad "raise: a refused start left schema $(schema), expected 3"
[ -e "$store/journal.0" ] && bad "raise: the refused start left journal.0"
rmdir "$store/journal.1"
: >"$DIR/broker.log"
start_again
stop_all
grep -q "was of schema 3: it is of schema 4 now" "$DIR/broker.log" ||
	bad "raise: the start did not log the raise: $(cat "$DIR/broker.log")"
[ "$(schema)" = 4 ] || bad "raise: schema $(schema) after the start, expected 4"

[ "$FAILS" = 0 ] || exit 1
echo "test_journal_start: ok"
