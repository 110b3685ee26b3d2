#!/usr/bin/env bash
# test_witness_fork_restore.sh — a broker operator passes another history off
# as a declared restore (rev-edges s16, finding 1): a new log made aside
# (`rete-broker --init` on another data folder), copied with `rete store
# backup` (a marked copy), swapped in for the real store, store.state
# deleted, and the broker started with --restore. The broker declares epoch
# 2 from index 1, its Epoch entry recording the fork's own checkpoint of
# size 1; entry 0 is not the entry 0 the agents verified. Both agents must
# check the new epoch against what they verified before taking it: the
# WITNESS ALARM, and no cosignature of the forked epoch's checkpoint.
#
#   head    the agents verified the checkpoint of size 1 (the WELCOME's,
#           normally): the restore began at index 1, past it, so the new epoch must
#           extend it; the consistency proof fails: the alarm.
#   behind  a checkpoint every entry, and the agents restarted after the
#           deliveries: they verified (and cosigned) the latest checkpoint,
#           of size V > 1. The restore began at 1, below V: the Epoch entry
#           (read by the agents with the entries query) records the fork's
#           own checkpoint of size 1, smaller than V: the alarm. (An honest
#           restore without its state file says the same, and gets the same
#           alarm: docs/agent.md, "After a declared restore".)
#   keepstate  as behind, the state file kept: the Epoch entry records the
#           state file's checkpoint (size V, the real one), which
#           contradicts nothing the agents verified; but the directory entry
#           they were given at index 0 before the restore is not at index 0
#           of the new log (an inclusion proof to its checkpoint): the alarm.
#   honest  as behind, but an honest restore: a backup of the real store
#           taken at 1 entry, put back with the state file kept, --restore.
#           The Epoch entry records the state file's checkpoint, not smaller
#           than the agents' (size V), and entry 0 is the directory entry
#           they were given before: both take the new epoch ("checks out
#           against the checkpoint ... (a restore of a copy of 1 entries")
#           and cosign its checkpoint, no alarm.
#
# test_witness_fork_pin.sh runs the same scenario function on three more
# (FORK_SCENARIOS; rev-final s16, findings 1 and 4):
#   dirchange  as keepstate, but before the fork the operator changes an
#           agency's display name and reloads (SIGHUP): the directory the
#           agents were last given is at log index D >= 1, not below the
#           fork's restore point (1). Entry 0, pinned by each agent from
#           its first verified checkpoint, is not the fork's: the alarm.
#   nowdir  as keepstate, the agents stopped before the fork and their meta
#           "wdir" emptied (an agent upgraded from 0.7.0 keeps none), started
#           again after it: entry 0 still tells the fork: the alarm.
#   honestdir  as honest, with that reload after the backup: an honest
#           restore below the directory the agents were given; no alarm,
#           and the directory entry each agent keeps afterwards (meta
#           "wdir") is the new epoch's, not the one the restore dropped.
#   pinrefused  as dirchange, but the broker refuses every read when the
#           agents first start (access_log unwritable, a stock setting,
#           reloaded), so each agent's pin question is refused; the
#           access record then made writable again (reload). The agents
#           must ask the pin again and pin entry 0, without a restart
#           (rev-pin s17, finding 2: the refusal switched the pin off for
#           the run, and the fork was cosigned), and the fork is the alarm.
#
# Each alarm expected names the check that must raise it (rev-pin s17, #4).
#
# An honest restore raises no alarm: test_witness_restore_reuse,
# test_audit_restore, test_agent_evidence. The real broker and agents, ipc
# sockets; waits poll files and log lines with deadlines.
set -uo pipefail
: "${RETE_BIN:?set by ctest}"
. "$(dirname "$0")/lib.sh"
itest_init fork-restore
ROOT=$DIR
# a scenario that fails leaves DIR at its own folder: the whole test's goes
before_cleanup() { DIR=$ROOT; }

scenario() {
	DIR=$ROOT/$1
	mkdir -p "$DIR"
	make_keys broker.mantova social.mantova cpi.mantova coord.mantova
	agencies_ini "Servizi Sociali" | broker_ini
	[ "$1" != head ] && sed -i 's/^data = store$/&\ncheckpoint_every = 1/' "$DIR/broker/broker.ini"
	coord_ini </dev/null
	agent_ini social.mantova cpi.mantova
	store=$DIR/broker/store
	case $1 in
	head) ALARM="WITNESS ALARM: .*its log does not hold the checkpoint of size 1 " ;;
	behind) ALARM="WITNESS ALARM: .*smaller than the one of size" ;;
	*) ALARM="WITNESS ALARM: .*entry 0 of the new epoch's log is not the entry 0 this agent verified" ;;
	esac

	start_broker
	BROKER=${PIDS[-1]}
	if [ "$1" = pinrefused ]; then
		# every read refused (the access record cannot be written)
		sed -i 's#^data = store$#&\naccess_log = /proc/rete-fork-pin.access#' "$DIR/broker/broker.ini"
		kill -HUP "$BROKER"
		wait_for 30 grep -q "reload: access record" "$DIR/broker.log" ||
			fail "pinrefused: the broker did not refuse the access record: $(tail -n 3 "$DIR/broker.log")"
	fi
	start_agents social.mantova cpi.mantova
	if [ "$1" = pinrefused ]; then
		for a in social.mantova cpi.mantova; do
			wait_for 30 grep -q "the leaf of log entry 0 is not pinned" "$DIR/$a.log" ||
				fail "pinrefused: $a's pin question was not refused: $(grep witness "$DIR/$a.log" | tail -n 2)"
		done
		# the access record writable again: reads are served
		sed -i '/^access_log = /d' "$DIR/broker/broker.ini"
		kill -HUP "$BROKER"
		wait_for 30 grep -q "is written; reads are served" "$DIR/broker.log" ||
			fail "pinrefused: the broker does not serve reads again: $(tail -n 3 "$DIR/broker.log")"
		for a in social.mantova cpi.mantova; do
			wait_for 60 grep -q "the leaf of log entry 0 is pinned" "$DIR/$a.log" ||
				bad "pinrefused: $a's agent did not pin entry 0 once the broker served reads again: $(grep "log entry 0" "$DIR/$a.log" | tail -n 1)"
		done
	fi
	if [ "$1" = honest ] || [ "$1" = honestdir ]; then # a backup of the log as it is: 1 entry
		"$BIN/rete" store backup "$store" "$DIR/bk" >"$DIR/backup.out" 2>&1 ||
			fail "rete store backup: $(cat "$DIR/backup.out")"
	fi
	for i in 1 2 3; do send_referral "r-$i"; done
	wait_for 60 inbox_has cpi.mantova 3 || fail "r-1..r-3 were not delivered"
	wait_for 60 inbox_has social.mantova 3 || fail "no delivery receipts for r-1..r-3"
	if [ "$1" = dirchange ] || [ "$1" = honestdir ] || [ "$1" = pinrefused ]; then
		# a display name changed and reloaded: a new Directory entry
		# (index >= 1), given to the agents in a fresh WELCOME
		sed -i 's/^name = Servizi Sociali$/name = Servizi Sociali del Comune/' "$DIR/broker/broker.ini"
		kill -HUP "$BROKER"
		for a in social.mantova cpi.mantova; do
			wait_for 30 grep -q "directory of entry [1-9]" "$DIR/$a.log" || fail "$1: $a got no new directory"
		done
	fi
	# both agents have verified (and cosigned) a checkpoint of epoch 1
	cosigned() { "$BIN/rete" checkpoint "$store" 2>/dev/null | grep -q "^— $1 "; }
	wait_for 60 cosigned social.mantova || fail "social.mantova never cosigned a checkpoint of epoch 1"
	wait_for 60 cosigned cpi.mantova || fail "cpi.mantova never cosigned a checkpoint of epoch 1"
	if [ "$1" != head ]; then
		# the agents again: each verifies and cosigns the latest checkpoint
		# (pinrefused: the same run of each agent, which must have pinned)
		if [ "$1" != pinrefused ]; then
			stop_pid "${PIDS[1]}" "social.mantova's agent"
			stop_pid "${PIDS[2]}" "cpi.mantova's agent"
			PIDS=("$BROKER")
			: >"$DIR/social.mantova.log"
			: >"$DIR/cpi.mantova.log"
			start_agents social.mantova cpi.mantova
		fi
		# the latest checkpoint (above size 1) cosigned by both
		latest_cosigned() {
			"$BIN/rete" checkpoint "$store" >"$DIR/cp.out" 2>/dev/null &&
				[ "$(sed -n 2p "$DIR/cp.out")" -gt 1 ] &&
				grep -q "^— social.mantova " "$DIR/cp.out" && grep -q "^— cpi.mantova " "$DIR/cp.out"
		}
		wait_for 60 latest_cosigned ||
			fail "the agents did not cosign the latest checkpoint: $(cat "$DIR/cp.out")"
	fi
	if [ "$1" = nowdir ]; then
		# the agents stopped, their "wdir" removed: each starts again
		# after the fork, its first WELCOME already of epoch 2
		stop_pid "${PIDS[1]}" "social.mantova's agent"
		stop_pid "${PIDS[2]}" "cpi.mantova's agent"
		PIDS=("$BROKER")
		for a in social.mantova cpi.mantova; do drop_wdir "$a"; done
	fi
	stop_pid "$BROKER" "the broker"

	if [ "$1" = honest ] || [ "$1" = honestdir ]; then
		# an honest restore of the old copy, the state file kept: the
		# Epoch entry records the state file's checkpoint (not smaller
		# than the one the agents verified)
		mv "$store" "$DIR/store.before"
		cp -a "$DIR/bk" "$store"
		: >"$DIR/broker.log"
		"$BIN/rete-broker" -c "$DIR/broker/broker.ini" --restore >>"$DIR/broker.log" 2>&1 &
		PIDS+=($!)
		wait_for 30 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the restored broker did not answer"
		for a in social.mantova cpi.mantova; do
			wait_for 60 grep -q "checks out against the checkpoint of size .* (a restore of a copy of 1 entries" "$DIR/$a.log" ||
				fail "honest: $a's agent did not take the honest restore: $(grep -i 'epoch 2' "$DIR/$a.log" | head -n 3)"
			grep "(a restore of a copy of" "$DIR/$a.log" | head -n 1
		done
		wait_for 60 cosigned social.mantova || bad "honest: social.mantova did not cosign epoch 2"
		wait_for 60 cosigned cpi.mantova || bad "honest: cpi.mantova did not cosign epoch 2"
		"$BIN/rete" checkpoint "$store" | grep -q "^epoch 2$" || bad "honest: the latest checkpoint is not of epoch 2"
		for a in social.mantova cpi.mantova; do
			! grep -q "WITNESS ALARM" "$DIR/$a.log" ||
				bad "honest: $a raised an alarm: $(grep "WITNESS ALARM" "$DIR/$a.log" | head -n 1)"
		done
		stop_all
		[ "$1" = honestdir ] && for a in social.mantova cpi.mantova; do
			# the directory entry kept (meta "wdir": index BE64, leaf) is
			# the new epoch's, of the WELCOME that declared it (the one
			# the restored broker logged, the name being changed), not
			# the old one past the restore point
			x=$(grep -o "logged directory .* at index [0-9]*$" "$DIR/broker.log" | tail -n 1 |
				grep -o "[0-9]*$")
			[ -n "$x" ] || fail "honestdir: the restored broker logged no directory: $(cat "$DIR/broker.log")"
			v=$(mdb_dump -p -s meta "$DIR/agents/$a/data" | grep -A1 -x " wdir" | tail -n 1)
			want=$(printf ' \\00\\00\\00\\00\\00\\00\\00\\%02x' "$x")
			[ "${v:0:25}" = "$want" ] ||
				bad "honestdir: $a keeps a directory entry other than the new epoch's (entry $x): meta wdir '${v:0:25}...', want '$want...'"
		done
		DIR=$ROOT
		return
	fi

	# the fork, made aside: other data folder, other sockets
	sed "s#^data = store#data = fork#; s#broker.sock#fork.sock#; s#events.sock#fevents.sock#" \
		"$DIR/broker/broker.ini" >"$DIR/broker/fork.ini"
	"$BIN/rete-broker" -c "$DIR/broker/fork.ini" --init >"$DIR/fork.log" 2>&1 &
	FORK=$!
	PIDS+=($FORK)
	wait_for 30 grep -q "started: " "$DIR/fork.log" || fail "the fork's broker did not start"
	stop_pid "$FORK" "the fork's broker"
	mv "$store" "$DIR/store.honest"
	if [ "$1" = head ] || [ "$1" = behind ]; then
		mv "$DIR/broker/store.state" "$DIR/state.honest"
	fi
	"$BIN/rete" store backup "$DIR/broker/fork" "$store" >"$DIR/backup.out" 2>&1 ||
		fail "rete store backup: $(cat "$DIR/backup.out")"
	: >"$DIR/broker.log"
	"$BIN/rete-broker" -c "$DIR/broker/broker.ini" --restore >>"$DIR/broker.log" 2>&1 &
	PIDS+=($!)
	wait_for 30 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the restored broker did not answer"
	grep -q "epoch 2" "$DIR/broker.log" || fail "the --restore start did not say epoch 2: $(tail -n 5 "$DIR/broker.log")"
	[ "$1" = nowdir ] && start_agents social.mantova cpi.mantova

	for a in social.mantova cpi.mantova; do
		wait_for 60 grep -q "$ALARM" "$DIR/$a.log" ||
			fail "$1: $a's agent raised no WITNESS ALARM of the expected check ('$ALARM') for the forked epoch 2: $(grep -i -E 'epoch 2|WITNESS ALARM' "$DIR/$a.log" | head -n 2)"
	done
	# the alarm is kept (rete status says it) and the forked epoch is not cosigned
	for a in social.mantova cpi.mantova; do
		"$BIN/rete" status -c "$DIR/agents/$a/agent.ini" >"$DIR/status.out" 2>&1
		grep -q "ALARM" "$DIR/status.out" || bad "$1: rete status of $a shows no alarm: $(head -n 3 "$DIR/status.out")"
		grep "WITNESS ALARM" "$DIR/$a.log" | head -n 1
		if cosigned "$a"; then
			bad "$1: $a cosigned the forked epoch's checkpoint: $("$BIN/rete" checkpoint "$store")"
		fi
		grep -q "a declared restore; its checkpoint becomes the witness's baseline" "$DIR/$a.log" &&
			bad "$1: $a took the forked epoch's checkpoint as its baseline"
	done
	stop_all
	DIR=$ROOT
}

# drop_wdir ID: agent ID's meta "wdir" emptied (the agent stopped), which
# the witness reads as no record, as it does of a 0.7.0 agent's store
# (mdb_load puts the empty value in place; a dump reloaded without the
# record would stand for it better, but mdb_load cannot read back the
# long values of an agent's store)
drop_wdir() {
	local d=$DIR/agents/$1/data
	mdb_dump -p -s meta "$d" | grep -qx " wdir" || fail "$1's store holds no meta wdir to remove"
	printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n wdir\n \nDATA=END\n' >"$DIR/$1.nowdir"
	mdb_load -s meta -f "$DIR/$1.nowdir" "$d" 2>"$DIR/$1.load" ||
		fail "mdb_load of $1's store: $(cat "$DIR/$1.load")"
	[ "$(mdb_dump -p -s meta "$d" | grep -A1 -x " wdir" | tail -n 1)" = " " ] ||
		fail "$1's wdir was not emptied"
}

for s in ${FORK_SCENARIOS:-head behind keepstate honest}; do
	scenario "$s"
done
[ "$FAILS" -eq 0 ] || exit 1
echo "ok (${FORK_SCENARIOS:-head behind keepstate honest}): in each fork both agents raised the alarm and cosigned none of the forked epoch; each honest restore of an older copy passed"
