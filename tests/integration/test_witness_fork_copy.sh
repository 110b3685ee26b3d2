#!/usr/bin/env bash
# test_witness_fork_copy.sh — a fork that keeps entry 0 and the directory
# entry, made with stock tools only (session 17's review of the pin,
# finding 1; docs/security.md, "What the check below the restore point
# catches, and what not"):
#
#   copy    the broker stopped at log size S0, its store and state file
#           copied aside with `cp -a`; the real broker goes on, and the
#           agents verify checkpoints past S0 (one of size V, then S1). A
#           broker started aside on the copy (its state file copied too)
#           logs other entries after the copied ones (display names
#           changed and reloaded: Directory entries) up to size R, V <= R
#           < S1; `rete store backup` of that store is put in place of the
#           real one, the real state file kept, and the broker started
#           with --restore. Its Epoch entry (index R) records the real
#           checkpoint of size S1, entry 0 and the directory entry below
#           S0 are the real ones: the checks before this test pass it. The
#           agents must ask a consistency proof from the largest checkpoint
#           they verified at or below R (V) to the new epoch's: the entries
#           in [S0, R) are not the real ones, so the WITNESS ALARM, and no
#           cosignature of epoch 2.
#   honest  the same traffic, but `rete store backup` of the real store
#           once the agents verified V (a copy of B >= V entries), put
#           back after S1 with the state file kept and --restore: the
#           proof from V holds; both agents take the new epoch and cosign
#           it, no alarm.
#   stale   two honest restores, cpi.mantova down across the first, its
#           store left as a failed or interrupted link pass (or an earlier
#           agent run across the restore) leaves it: the epoch-1 baseline
#           gone (meta "checkpoint" deleted), its history of epoch 1 not
#           cut at the restore point R1 (rev-hist s18, finding 1). Back in
#           epoch 2 past a backup of R2 entries, it takes a baseline with
#           nothing to extend; at the restore of that backup its history
#           must not offer an epoch-1 checkpoint in (R1, R2], which epoch
#           2's log never held: no alarm, both agents cosign epoch 3.
#           Then social.mantova's history made unreadable: said at
#           warning, once, and begun anew.
#
# The real broker and agents, ipc sockets; waits poll files and log lines
# with deadlines.
set -uo pipefail
: "${RETE_BIN:?set by ctest}"
. "$(dirname "$0")/lib.sh"
itest_init fork-copy
ROOT=$DIR
before_cleanup() { DIR=$ROOT; }

# size_of STORE: the size of the latest checkpoint stored in STORE
size_of() { "$BIN/rete" checkpoint "$1" 2>/dev/null | sed -n 2p; }

# latest_cosigned STORE MIN: the latest checkpoint of STORE is larger than
# MIN and cosigned by both agents; its size in DIR/cp.size
latest_cosigned() {
	"$BIN/rete" checkpoint "$1" >"$DIR/cp.out" 2>/dev/null &&
		[ "$(sed -n 2p "$DIR/cp.out")" -gt "$2" ] &&
		grep -q "^— social.mantova " "$DIR/cp.out" && grep -q "^— cpi.mantova " "$DIR/cp.out" &&
		sed -n 2p "$DIR/cp.out" >"$DIR/cp.size"
}

# referrals N...: each referral sent, delivered and its delivery receipt back
referrals() {
	local i
	for i in "$@"; do send_referral "r-$i"; done
	wait_for 60 inbox_has cpi.mantova "$i" || fail "r-1..r-$i were not delivered"
	wait_for 60 inbox_has social.mantova "$i" || fail "no delivery receipts for r-1..r-$i"
}

# whist ID: agent ID's history of verified checkpoints (meta "whist":
# 44-byte records, epoch BE32 || size BE64 || root), one "EPOCH SIZE" a line
whist() {
	local hex
	hex=$(mdb_dump -s meta "$DIR/agents/$1/data" | grep -A1 -x " 7768697374" | sed -n 2p | tr -d ' ')
	while [ ${#hex} -ge 88 ]; do
		echo "$((16#${hex:0:8})) $((16#${hex:8:16}))"
		hex=${hex:88}
	done
}

scenario() {
	DIR=$ROOT/$1
	mkdir -p "$DIR"
	make_keys broker.mantova social.mantova cpi.mantova coord.mantova
	agencies_ini "Servizi Sociali" | broker_ini
	sed -i 's/^data = store$/&\ncheckpoint_every = 1/' "$DIR/broker/broker.ini"
	coord_ini </dev/null
	agent_ini social.mantova cpi.mantova
	for a in social.mantova cpi.mantova; do echo "witness = 300ms" >>"$DIR/agents/$a/agent.ini"; done
	store=$DIR/broker/store

	start_broker
	start_agents social.mantova cpi.mantova
	referrals 1 2
	wait_for 60 latest_cosigned "$store" 0 || fail "$1: the agents did not cosign a checkpoint"
	stop_pid "${PIDS[0]}" "the broker"
	S0=$(size_of "$store")
	if [ "$1" = copy ]; then # the stopped store and its state file, copied aside
		cp -a "$store" "$DIR/broker/fork"
		cp -a "$DIR/broker/store.state" "$DIR/broker/fork.state"
	fi
	# the real broker goes on: the agents verify a checkpoint past S0 (V)
	: >"$DIR/broker.log"
	"$BIN/rete-broker" -c "$DIR/broker/broker.ini" >>"$DIR/broker.log" 2>&1 &
	PIDS[0]=$!
	wait_for 30 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the broker did not start again"
	referrals 3
	wait_for 60 latest_cosigned "$store" "$S0" || fail "$1: the agents did not cosign a checkpoint past $S0"
	V=$(cat "$DIR/cp.size")
	if [ "$1" = honest ]; then # a real backup, of B >= V entries
		"$BIN/rete" store backup "$store" "$DIR/bk" >"$DIR/backup.out" 2>&1 ||
			fail "rete store backup: $(cat "$DIR/backup.out")"
		# then one entry (a display name changed, reloaded: a Directory),
		# verified by both: a checkpoint past B that the new epoch's first
		# one (B + 2: its Epoch entry, and a Directory again, the name
		# being changed) outgrows, which the history must drop all the same
		sed -i 's/^name = Servizi Sociali$/name = Servizi Sociali del Comune/' "$DIR/broker/broker.ini"
		kill -HUP "${PIDS[0]}"
		wait_for 60 latest_cosigned "$store" "$V" || fail "honest: the agents did not cosign the directory's checkpoint"
	fi
	referrals 4 5 6 7
	wait_for 60 latest_cosigned "$store" "$V" || fail "$1: the agents did not cosign the latest checkpoint"
	S1=$(cat "$DIR/cp.size")
	stop_pid "${PIDS[0]}" "the broker"
	echo "$1: S0 $S0, V $V (cosigned by both), S1 $S1"

	if [ "$1" = copy ]; then
		# a broker aside on the copy: other sockets, and a display name
		# changed at each reload (a Directory entry each) until its log
		# reaches V
		sed "s#^data = store#data = fork#; s#broker.sock#fork.sock#; s#events.sock#fevents.sock#" \
			"$DIR/broker/broker.ini" >"$DIR/broker/fork.ini"
		"$BIN/rete-broker" -c "$DIR/broker/fork.ini" >"$DIR/fork.log" 2>&1 &
		FORK=$!
		PIDS+=($FORK)
		wait_for 30 grep -q "started: " "$DIR/fork.log" || fail "the broker aside did not start"
		n=0
		while R=$(size_of "$DIR/broker/fork") && [ "$R" -lt "$V" ]; do
			n=$((n + 1))
			[ $n -le 40 ] || fail "the broker aside logs no entries (size $R)"
			sed -i "s/^name = Servizi Sociali.*$/name = Servizi Sociali $n/" "$DIR/broker/fork.ini"
			kill -HUP "$FORK"
			wait_for 30 grep -q "logged directory .* at index $R\$" "$DIR/fork.log" ||
				fail "the broker aside did not log directory $n at index $R: $(tail -n 3 "$DIR/fork.log")"
			wait_for 30 sh -c "[ \"\$('$BIN/rete' checkpoint '$DIR/broker/fork' 2>/dev/null | sed -n 2p)\" -gt $R ]" ||
				fail "the broker aside stored no checkpoint past $R"
		done
		stop_pid "$FORK" "the broker aside"
		R=$(size_of "$DIR/broker/fork")
		[ "$R" -ge "$V" ] && [ "$R" -lt "$S1" ] || fail "copy: the fork's size $R is not in [$V, $S1)"
		echo "copy: the fork's log is of size $R"
		mv "$store" "$DIR/store.real"
		"$BIN/rete" store backup "$DIR/broker/fork" "$DIR/bk" >"$DIR/backup.out" 2>&1 ||
			fail "rete store backup: $(cat "$DIR/backup.out")"
	else
		mv "$store" "$DIR/store.real"
	fi
	# the backup put in place, the real state file kept, --restore
	cp -a "$DIR/bk" "$store"
	: >"$DIR/broker.log"
	"$BIN/rete-broker" -c "$DIR/broker/broker.ini" --restore >>"$DIR/broker.log" 2>&1 &
	PIDS[0]=$!
	wait_for 30 "$BIN/rete" monitor -c "$DIR/coord.ini" --once || fail "the restored broker did not answer"
	grep -q "epoch 2" "$DIR/broker.log" || fail "the --restore start did not say epoch 2: $(tail -n 5 "$DIR/broker.log")"
	cosigned() { "$BIN/rete" checkpoint "$store" 2>/dev/null | grep -q "^— $1 "; }

	if [ "$1" = honest ]; then
		for a in social.mantova cpi.mantova; do
			wait_for 60 grep -q "checks out against the checkpoint of size .*the checkpoint of size [0-9]* it verified in epoch 1 is on the new epoch's log" "$DIR/$a.log" ||
				fail "honest: $a's agent did not take the honest restore by a checkpoint it verified below the restore point: $(grep -i -E 'epoch 2|WITNESS ALARM' "$DIR/$a.log" | head -n 3)"
			wait_for 60 cosigned "$a" || bad "honest: $a did not cosign epoch 2"
			! grep -q "WITNESS ALARM" "$DIR/$a.log" ||
				bad "honest: $a raised an alarm: $(grep "WITNESS ALARM" "$DIR/$a.log" | head -n 1)"
		done
		grep -o "checks out .*" "$DIR/social.mantova.log" | head -n 1
		# the history kept: the old epoch's checkpoints at or below the
		# restore point (B, the backup's size), then the new epoch's
		B=$(size_of "$DIR/bk")
		for a in social.mantova cpi.mantova; do
			whist "$a" >"$DIR/whist.$a"
			awk -v b="$B" '$1 == 1 && $2 > b { bad = 1 } $1 == 2 { two = 1 } $1 == 1 { one = 1 }
				END { exit !(one && two && !bad) }' "$DIR/whist.$a" ||
				bad "honest: $a's history of checkpoints is not epoch 1 at or below $B, then epoch 2: $(tr '\n' ',' <"$DIR/whist.$a")"
		done
	else
		# the alarm names a checkpoint the agent verified in (S0, R]
		ALARM="WITNESS ALARM: .*the checkpoint of size [0-9]* this agent verified in epoch 1, below the restore point (log index $R), is not on the new epoch's log"
		for a in social.mantova cpi.mantova; do
			wait_for 60 grep -q -E "WITNESS ALARM|checks out against" "$DIR/$a.log"
			grep -q "$ALARM" "$DIR/$a.log" ||
				fail "copy: $a's agent raised no WITNESS ALARM naming a checkpoint it verified in ($S0, $R] for the forked epoch 2: $(grep -E 'checks out|WITNESS ALARM' "$DIR/$a.log" | head -n 1)"
			k=$(grep -o "$ALARM" "$DIR/$a.log" | head -n 1 | grep -o "checkpoint of size [0-9]* this" | grep -o "[0-9]*")
			[ "$k" -gt "$S0" ] && [ "$k" -le "$R" ] || bad "copy: $a's alarm names the checkpoint of size $k, not one in ($S0, $R]"
			"$BIN/rete" status -c "$DIR/agents/$a/agent.ini" >"$DIR/status.out" 2>&1
			grep -q "ALARM" "$DIR/status.out" || bad "copy: rete status of $a shows no alarm"
			! cosigned "$a" || bad "copy: $a cosigned the forked epoch's checkpoint"
		done
		grep -o "WITNESS ALARM.*" "$DIR/social.mantova.log" | head -n 1
		# epoch 2 accepted on one agent: its history keeps nothing of epoch 1
		"$BIN/rete-agent" -c "$DIR/agents/social.mantova/agent.ini" --accept-epoch 2 >"$DIR/accept.out" 2>&1 ||
			fail "copy: --accept-epoch 2: $(cat "$DIR/accept.out")"
		wait_for 60 cosigned social.mantova || bad "copy: social.mantova did not cosign epoch 2 once accepted"
		whist social.mantova >"$DIR/whist.out"
		[ -s "$DIR/whist.out" ] && ! grep -q "^1 " "$DIR/whist.out" ||
			bad "copy: social.mantova's history after the accepted epoch is not of epoch 2 alone: $(tr '\n' ',' <"$DIR/whist.out")"
	fi
	stop_all
	DIR=$ROOT
}

# restore_from BACKUP: the broker stopped, BACKUP put in place of its
# store (the real state file kept) and started with --restore
restore_from() {
	stop_pid "${PIDS[0]}" "the broker"
	rm -rf "$store"
	cp -a "$1" "$store"
	: >"$DIR/broker.log"
	"$BIN/rete-broker" -c "$DIR/broker/broker.ini" --restore >>"$DIR/broker.log" 2>&1 &
	PIDS[0]=$!
	wait_for 30 "$BIN/rete" monitor -c "$DIR/coord.ini" --once ||
		fail "the broker restored from $1 did not answer: $(tail -n 3 "$DIR/broker.log")"
}

# cosigned_by ID MIN: the latest checkpoint is larger than MIN and cosigned
# by ID; its size in DIR/cp.size
cosigned_by() {
	"$BIN/rete" checkpoint "$store" >"$DIR/cp.out" 2>/dev/null &&
		[ "$(sed -n 2p "$DIR/cp.out")" -gt "$2" ] && grep -q "^— $1 " "$DIR/cp.out" &&
		sed -n 2p "$DIR/cp.out" >"$DIR/cp.size"
}

stale() {
	DIR=$ROOT/stale
	mkdir -p "$DIR"
	make_keys broker.mantova social.mantova cpi.mantova coord.mantova
	agencies_ini "Servizi Sociali" | broker_ini
	sed -i 's/^data = store$/&\ncheckpoint_every = 1/' "$DIR/broker/broker.ini"
	coord_ini </dev/null
	agent_ini social.mantova cpi.mantova
	for a in social.mantova cpi.mantova; do echo "witness = 300ms" >>"$DIR/agents/$a/agent.ini"; done
	store=$DIR/broker/store
	start_broker
	start_agents social.mantova cpi.mantova
	CPI=${PIDS[2]}
	referrals 1 2
	wait_for 60 latest_cosigned "$store" 0 || fail "stale: the agents did not cosign a checkpoint"
	"$BIN/rete" store backup "$store" "$DIR/b1" >"$DIR/backup.out" 2>&1 || fail "rete store backup: $(cat "$DIR/backup.out")"
	R1=$(size_of "$DIR/b1")
	referrals 3
	wait_for 60 latest_cosigned "$store" "$R1" || fail "stale: the agents did not cosign a checkpoint past $R1"
	V=$(cat "$DIR/cp.size")
	stop_pid "$CPI" "cpi.mantova's agent"
	whist cpi.mantova >"$DIR/whist.before"
	awk -v r="$R1" '$1 == 1 && $2 > r { n++ } END { exit !n }' "$DIR/whist.before" ||
		fail "stale: cpi.mantova's history holds no checkpoint past $R1: $(tr '\n' , <"$DIR/whist.before")"
	# its baseline deleted, its history left whole (bytevalue dump: a key
	# line and a value line; "checkpoint" is 636865636b706f696e74)
	cdata=$DIR/agents/cpi.mantova/data
	mdb_dump -a "$cdata" >"$DIR/cpi.dump" || fail "mdb_dump of cpi.mantova's store"
	# (db_pagesize: a line of lmdb-utils' dump its own mdb_load does not take)
	grep -v '^db_pagesize=' "$DIR/cpi.dump" | awk '/^database=/{db=substr($0,10)} /^HEADER=END/{data=1; print; next} /^DATA=END/{data=0}
		data && /^ / {k=$0; getline v; if (db=="meta" && k==" 636865636b706f696e74") next; print k; print v; next}
		{print}' >"$DIR/cpi.cut"
	mv "$cdata" "$DIR/cpi.data.whole" && mkdir "$cdata" && mdb_load -f "$DIR/cpi.cut" "$cdata" ||
		fail "mdb_load of cpi.mantova's store without its baseline"

	restore_from "$DIR/b1" # epoch 2 from R1; social.mantova takes it
	wait_for 60 grep -q "checks out against" "$DIR/social.mantova.log" ||
		fail "stale: social.mantova did not take the first restore: $(grep "WITNESS ALARM" "$DIR/social.mantova.log")"
	for i in 4 5; do send_referral "r-$i"; done # queued for cpi.mantova
	wait_for 60 cosigned_by social.mantova "$V" || fail "stale: social.mantova cosigned nothing of epoch 2 past $V"
	"$BIN/rete" store backup "$store" "$DIR/b2" >"$DIR/backup.out" 2>&1 || fail "rete store backup: $(cat "$DIR/backup.out")"
	R2=$(size_of "$DIR/b2")
	send_referral r-6
	"$BIN/rete-agent" -c "$DIR/agents/cpi.mantova/agent.ini" >>"$DIR/cpi.mantova.log" 2>&1 &
	PIDS+=($!)
	wait_for 60 inbox_has cpi.mantova 6 || fail "stale: r-4..r-6 were not delivered"
	wait_for 60 latest_cosigned "$store" "$R2" || fail "stale: the agents did not cosign epoch 2 past $R2"
	whist cpi.mantova >"$DIR/whist.mid"
	echo "stale: R1 $R1, V $V, R2 $R2; cpi.mantova's history in epoch 2: $(tr '\n' , <"$DIR/whist.mid")"

	restore_from "$DIR/b2" # epoch 3 from R2: honest
	grep -q "epoch 3" "$DIR/broker.log" || fail "the second --restore did not say epoch 3: $(tail -n 5 "$DIR/broker.log")"
	for a in social.mantova cpi.mantova; do
		wait_for 60 grep -q -E "declared restore \(epoch 3\) checks out|WITNESS ALARM" "$DIR/$a.log"
		! grep -q "WITNESS ALARM" "$DIR/$a.log" ||
			bad "stale: $a raised an alarm on an honest restore: $(grep -o "WITNESS ALARM.*" "$DIR/$a.log" | head -n 1)"
		grep -q "declared restore (epoch 3) checks out" "$DIR/$a.log" || bad "stale: $a did not take the second restore"
	done
	grep -o "witness: the history of verified checkpoints ends at .*" "$DIR/cpi.mantova.log" | head -n 1
	wait_for 60 latest_cosigned "$store" "$R2" || bad "stale: the agents did not both cosign epoch 3"
	R3=$(cat "$DIR/cp.size")
	# an unreadable history (3 bytes): said at warning, once, and begun anew
	stop_pid "${PIDS[1]}" "social.mantova's agent"
	printf 'whist\n\\01\\02\\03\n' | mdb_load -T -s meta "$DIR/agents/social.mantova/data" ||
		fail "mdb_load of social.mantova's unreadable history"
	"$BIN/rete-agent" -c "$DIR/agents/social.mantova/agent.ini" >>"$DIR/social.mantova.log" 2>&1 &
	PIDS[1]=$!
	referrals 7 8
	wait_for 60 latest_cosigned "$store" "$R3" || bad "stale: the agents did not cosign epoch 3 past $R3"
	UNREAD="history of verified checkpoints (meta \"whist\", 3 bytes) is unreadable"
	[ "$(grep -c "warning.*$UNREAD" "$DIR/social.mantova.log")" = 1 ] ||
		bad "stale: social.mantova did not say once at warning that its history is unreadable: $(grep -c "$UNREAD" "$DIR/social.mantova.log") lines"
	# (the cosignature may reach the broker before the agent's own
	# transaction that keeps the checkpoint and its history has ended)
	has_epoch3() { whist social.mantova | grep -q "^3 "; }
	wait_for 30 has_epoch3 || bad "stale: social.mantova's history was not begun anew"
	stop_all
	DIR=$ROOT
}

for s in ${FORK_SCENARIOS:-copy honest stale}; do
	if [ "$s" = stale ]; then stale; else scenario "$s"; fi
done
[ "$FAILS" -eq 0 ] || exit 1
echo "ok: the fork of a copied store is the alarm, the honest restore of a real backup passes"
