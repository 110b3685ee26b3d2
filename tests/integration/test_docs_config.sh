#!/usr/bin/env bash
# test_docs_config.sh — keeps docs/operations.md's configuration reference
# and the examples true.
#
# 1. Every configuration key the code reads is documented, and every key
#    documented exists in the code. The code's keys come from the three
#    parsers: the key tables of broker/config.c (broker_keys[], limit_keys[],
#    policy_keys[], agency_keys[]), and the string literals compared with the
#    key's name (strcmp(name, "...")) or listed in a { "key", &cfg->slot }
#    table inside the ini handlers of agents/agent/agent_config.c
#    (cfg_handler) and agents/cli/coord_config.c (cc_handler; cc_report for
#    [report]). The documented
#    keys are the first column of the tables of docs/operations.md under the
#    headings "FILE.ini, section [SECTION]", each with the columns
#    key | default | meaning. Differences are listed in both directions.
#    The defaults written as literals in the code (the broker's number(),
#    calendar_duration(), byte_size() calls and [limits] defaults; the
#    agent's and coordinator's cfg->FIELD = N initialisations) equal the
#    documented ones, compared in one spelling (ms, bytes).
# 2. The programs themselves accept every documented key (a file holding
#    only that key gets no "unknown key" answer), and refuse a made-up one
#    (so this probe can fail).
# 3. Every examples/**/*.json passes `rete message check`; examples/broker.ini
#    passes `rete-broker --check-config`; and the example agent.ini files,
#    coord.ini and audit.ini work: a broker started from examples/broker.ini
#    admits the four example agents (health query: all connected), the
#    coordinator (`rete monitor --once --json`) and the auditor (`rete audit
#    verify -c audit.ini`, at a distance). Only the endpoints are changed, to
#    free ports, and the keys made where the files expect them.
set -uo pipefail
: "${RETE_BIN:?set RETE_BIN to the bin folder of the build}"
SRC=${RETE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export PATH="$RETE_BIN:$PATH"
. "$(dirname "$0")/lib.sh"
itest_init docs-config

# --- 1. keys in the code ---------------------------------------------------------

# literals_between FILE START_RE END_RE: the "..." literals of the lines from
# the first line matching START_RE to the next matching END_RE.
literals_between() {
	awk -v s="$2" -v e="$3" '
		!on && $0 ~ s { on = 1 }
		on { print }
		on && $0 ~ e { on = 0 }' "$1" | grep -o '"[^"]*"' | tr -d '"'
}

code_keys() {
	local t sec
	for t in broker:broker limit:limits policy:policy agency:"agency ID"; do
		sec=${t#*:}
		literals_between "$SRC/broker/config.c" \
			"^static const char \\*const ${t%%:*}_keys\\[\\] = \\{" 'NULL\};' |
			sed "s/^/broker.ini [$sec] /"
	done
	# agent.ini and coord.ini: the handler's own comparisons and tables.
	# Only `strcmp(name, "...")` and `{"...", &cfg->...}` count: comparisons
	# with the section's name are not keys.
	awk '/^static int cfg_handler\(/ { on = 1 } on { print } on && /^}/ { exit }' \
		"$SRC/agents/agent/agent_config.c" |
		grep -oE 'strcmp\(name, "[a-z_]+"\)|\{"[a-z_]+", &cfg->' |
		grep -oE '"[a-z_]+"' | tr -d '"' | sed 's/^/agent.ini [agent] /'
	awk '/^static int cc_handler\(/ { on = 1 } on { print } on && /^}/ { exit }' \
		"$SRC/agents/cli/coord_config.c" |
		grep -oE 'strcmp\(name, "[a-z_]+"\)|\{"[a-z_]+", &cfg->' |
		grep -oE '"[a-z_]+"' | tr -d '"' | sed 's/^/coord.ini [client] /'
	awk '/^static int cc_report\(.*\)$/ { on = 1 } on { print } on && /^}/ { exit }' \
		"$SRC/agents/cli/coord_config.c" |
		grep -oE 'strcmp\(name, "[a-z_]+"\)' |
		grep -oE '"[a-z_]+"' | tr -d '"' | sed 's/^/coord.ini [report] /'
	# [privacy]: one parser for agent.ini, coord.ini and audit.ini
	awk '/^static int pc_handler\(/ { on = 1 } on { print } on && /^}/ { exit }' \
		"$SRC/agents/common/privacy_config.c" |
		grep -oE 'strcmp\(name, "[a-z_]+"\)|\{"[a-z_]+", &cfg->' |
		grep -oE '"[a-z_]+"' | tr -d '"' | sed 's/^/agent.ini [privacy] /'
}

# --- 1. keys in the documentation --------------------------------------------------

# doc_keys prints "FILE [SECTION] key" for the first column of each table
# under a heading "... FILE.ini ... [SECTION] ...", and checks each such
# table's header row.
doc_keys() {
	awk '
		/^#/ {
			cur = ""
			if (match($0, /(broker|agent|coord)\.ini/)) {
				file = substr($0, RSTART, RLENGTH)
				if (match($0, /\[[a-z]+( ID)?\]/))
					cur = file " " substr($0, RSTART, RLENGTH)
			}
			header = 0
			next
		}
		cur != "" && /^\|/ {
			if (!header) {
				h = $0
				gsub(/[ \t]/, "", h)
				if (h != "|key|default|meaning|")
					print "BADHEADER " cur ": " $0
				header = 1
				next
			}
			if ($0 ~ /^\|[- |:]+\|$/)
				next
			split($0, col, "|")
			k = col[2]
			gsub(/[ `\t]/, "", k)
			if (k != "")
				print cur " " k
		}' "$SRC/docs/operations.md"
}

[ -f "$SRC/docs/operations.md" ] || { echo "FAIL: docs/operations.md is missing" >&2; exit 1; }
code_keys | sort -u >"$DIR/code.txt"
doc_keys | sort >"$DIR/doc-raw.txt"

grep '^BADHEADER ' "$DIR/doc-raw.txt" | while read -r line; do
	echo "FAIL: docs/operations.md: table ${line#BADHEADER }: the columns must be key | default | meaning" >&2
done
grep -q '^BADHEADER ' "$DIR/doc-raw.txt" && FAILS=$((FAILS + 1))
grep -v '^BADHEADER ' "$DIR/doc-raw.txt" >"$DIR/doc-all.txt"
uniq -d "$DIR/doc-all.txt" | while read -r line; do
	echo "FAIL: docs/operations.md documents $line twice" >&2
done
[ -n "$(uniq -d "$DIR/doc-all.txt")" ] && FAILS=$((FAILS + 1))
sort -u "$DIR/doc-all.txt" >"$DIR/doc.txt"

# The extraction must have found each parser's keys (a parser rewritten in
# another style would otherwise pass with nothing to compare).
for sec in "broker.ini [broker]" "broker.ini [limits]" "broker.ini [policy]" \
	"broker.ini [agency ID]" "agent.ini [agent]" "coord.ini [client]" "agent.ini [privacy]" \
	"coord.ini [report]"; do
	grep -qF "$sec " "$DIR/code.txt" ||
		bad "no keys of $sec found in the code: update this test's extraction"
	grep -qF "$sec " "$DIR/doc.txt" ||
		bad "docs/operations.md has no table for $sec (a heading naming the file and [section])"
done
# Cross-check the agent's and coordinator's extraction with the list their
# own "unknown key; known: ..." sentence gives a user.
for pair in "agent.ini [agent]:$SRC/agents/agent/agent_config.c" \
	"coord.ini [client]:$SRC/agents/cli/coord_config.c"; do
	sec=${pair%%:*}
	# join the file, glue adjacent string literals, cut at the closing quote
	known=$(tr -d '\n' <"${pair#*:}" | sed -E 's/"[[:space:]]*"//g' |
		grep -oE 'unknown key; known: [^"]*' | head -1 | sed 's/^unknown key; known: //' |
		tr ',' '\n' | tr -d ' ' | grep -E '^[a-z_]+$' | sort -u)
	found=$(grep -F "$sec " "$DIR/code.txt" | awk '{print $NF}' | sort -u)
	[ "$known" = "$found" ] ||
		bad "$sec: the keys the handler compares ($(echo $found)) differ from its 'known:' list ($(echo $known))"
done

missing=$(comm -23 "$DIR/code.txt" "$DIR/doc.txt")
extra=$(comm -13 "$DIR/code.txt" "$DIR/doc.txt")
if [ -n "$missing" ]; then
	bad "keys the code reads but docs/operations.md does not document:"
	sed 's/^/    /' <<<"$missing" >&2
fi
if [ -n "$extra" ]; then
	bad "keys docs/operations.md documents but the code does not read:"
	sed 's/^/    /' <<<"$extra" >&2
fi

# docs/broker-config.md, the broker's own reference, has a table per section
# ("## [broker]", "## [limits]", ...): it lists every key of the section too
# (access_log and access_keep were once only in docs/operations.md).
awk '
	/^## / { sec = ""; if (match($0, /\[[a-z]+( ID)?\]$/)) sec = substr($0, RSTART, RLENGTH); next }
	sec != "" && /^\| `/ { split($0, col, "|"); k = col[2]; gsub(/[ `\t]/, "", k); print "broker.ini " sec " " k }
' "$SRC/docs/broker-config.md" | sort -u >"$DIR/broker-doc.txt"
missing=$(comm -23 <(grep '^broker.ini ' "$DIR/code.txt") "$DIR/broker-doc.txt")
[ -z "$missing" ] || bad "keys of broker.ini that docs/broker-config.md does not list: $(echo $missing)"

# --- 1b. the documented defaults are the code's ---------------------------------------

# norm VALUE: a default in one spelling: durations in ms ("10s" -> 10000),
# sizes in bytes ("4MiB"), plain numbers as they are, working days as
# written; anything else (required, none, a path, a zone) -> empty.
norm() {
	local v=${1//\`/}
	v=${v// /}
	case "$v" in
	*[0-9]wd) [[ $v =~ ^[0-9]+wd$ ]] && echo "$v" ;;
	*[0-9]ms) [[ $v =~ ^[0-9]+ms$ ]] && echo "${v%ms}" ;;
	*[0-9]s) [[ $v =~ ^[0-9]+s$ ]] && echo $((${v%s} * 1000)) ;;
	*[0-9]m) [[ $v =~ ^[0-9]+m$ ]] && echo $((${v%m} * 60000)) ;;
	*[0-9]h) [[ $v =~ ^[0-9]+h$ ]] && echo $((${v%h} * 3600000)) ;;
	*[0-9]d) [[ $v =~ ^[0-9]+d$ ]] && echo $((${v%d} * 86400000)) ;;
	*[0-9]KiB) [[ $v =~ ^[0-9]+KiB$ ]] && echo $((${v%KiB} * 1024)) ;;
	*[0-9]MiB) [[ $v =~ ^[0-9]+MiB$ ]] && echo $((${v%MiB} * 1048576)) ;;
	*) [[ $v =~ ^[0-9]+$ ]] && echo "$v" ;;
	esac
}

# code_defaults prints "FILE [SECTION] key VALUE" for the defaults written
# as literals: the broker's number()/calendar_duration()/byte_size() calls
# and its [limits] defaults[], the agent's and coordinator's `cfg->FIELD =
# N;` initialisations (FIELD found through the handler's key table or
# comparison). map_size is documented in MiB.
code_defaults() {
	local c="$SRC/broker/config.c" line key val
	grep -oE '(number|calendar_duration|byte_size)\(p, S, "[a-z_]+", [^,]+,' "$c" |
		while IFS= read -r line; do
			key=$(sed -E 's/.*"([a-z_]+)".*/\1/' <<<"$line")
			val=$(sed -E 's/.*"[a-z_]+", ([^,]+),$/\1/' <<<"$line")
			if [[ $val =~ ^\"(.*)\"$ ]]; then
				val=$(norm "${BASH_REMATCH[1]}")
			elif [[ $val =~ ^([0-9]+)u?\ \<\<\ ([0-9]+)$ ]]; then
				val=$((BASH_REMATCH[1] << BASH_REMATCH[2]))
			elif ! [[ $val =~ ^[0-9]+$ ]]; then
				val=""
			fi
			[ -n "$val" ] && echo "broker.ini [broker] $key $val"
		done
	local keys defs i
	keys=($(literals_between "$c" '^static const char \*const limit_keys\[\] = \{' 'NULL\};'))
	defs=($(grep -E 'defaults\[BROKER_NLIMITS\] = \{' "$c" | grep -oE '"[^"]*"' | tr -d '"'))
	for i in "${!keys[@]}"; do
		[ -n "${defs[$i]:-}" ] && echo "broker.ini [limits] ${keys[$i]} $(norm "${defs[$i]}")"
	done
	local pair file sec body field
	for pair in "agent.ini [agent]:$SRC/agents/agent/agent_config.c:cfg_handler" \
		"coord.ini [client]:$SRC/agents/cli/coord_config.c:cc_handler"; do
		IFS=: read -r sec file body <<<"$pair"
		grep -oE 'cfg->[a-z_]+ = [0-9]+(ULL << [0-9]+)?;' "$file" | while IFS= read -r line; do
			field=$(sed -E 's/cfg->([a-z_]+) =.*/\1/' <<<"$line")
			val=$(sed -E 's/.* = ([0-9]+).*/\1/' <<<"$line")
			# the key whose handler line names this field, else the
			# field's own name without _ms
			key=$(grep -oE "\\{\"[a-z_]+\", &cfg->$field\\}" "$file" | grep -oE '"[a-z_]+"' | tr -d '"')
			[ -n "$key" ] || key=${field%_ms}
			echo "$sec $key $val"
		done
	done
}

doc_defaults() {
	awk '
		/^#/ {
			cur = ""
			if (match($0, /(broker|agent|coord)\.ini/)) {
				file = substr($0, RSTART, RLENGTH)
				if (match($0, /\[[a-z]+( ID)?\]/))
					cur = file " " substr($0, RSTART, RLENGTH)
			}
			next
		}
		cur != "" && /^\| *`/ {
			split($0, col, "|")
			k = col[2]; d = col[3]
			gsub(/[ `\t]/, "", k)
			gsub(/^[ \t]+|[ \t]+$/, "", d)
			print cur "\t" k "\t" d
		}' "$SRC/docs/operations.md"
}

code_defaults | sort -u >"$DIR/defaults.txt"
compared=0
while IFS=$'\t' read -r sec key doc; do
	want=$(awk -v k="$sec $key" 'index($0, k " ") == 1 { print $NF; exit }' "$DIR/defaults.txt")
	[ -n "$want" ] || continue
	got=$(norm "$doc")
	compared=$((compared + 1))
	[ "$got" = "$want" ] ||
		bad "$sec $key: docs/operations.md gives the default '$doc' ($got), the code $want"
done < <(doc_defaults)
[ "$compared" -ge 15 ] ||
	bad "only $compared documented defaults could be compared with the code; update this test's extraction"

# --- 2. the programs accept every documented key -------------------------------------

probe_dir="$DIR/probe"
mkdir -p "$probe_dir"
# probe FILE_SECTION KEY: prints the program's answer to a file holding only
# that key.
probe() {
	local sec=$1 key=$2 ini="$probe_dir/p.ini"
	case "$sec" in
	"broker.ini [agency ID]") printf '[agency probe.party]\n%s = x\n' "$key" >"$ini" ;;
	broker.ini*) printf '%s\n%s = x\n' "${sec#broker.ini }" "$key" >"$ini" ;;
	"agent.ini [privacy]") printf '[privacy]\n%s = x\n' "$key" >"$ini" ;;
	agent.ini*) printf '[agent]\n%s = x\n' "$key" >"$ini" ;;
	"coord.ini [report]") printf '[report]\n%s = x\n' "$key" >"$ini" ;;
	coord.ini*) printf '[client]\n%s = x\n' "$key" >"$ini" ;;
	esac
	case "$sec" in
	broker.ini*) rete-broker -c "$ini" --check-config 2>&1 ;;
	# Both stop at the configuration: a file with one key never loads.
	# [privacy] is read (for the access record) before the [client] keys.
	"agent.ini [privacy]") rete report -c "$ini" --from 2026-01-01 --to 2026-01-01 2>&1 ;;
	agent.ini*) rete status -c "$ini" --timeout 0 2>&1 ;;
	coord.ini*) rete report -c "$ini" --from 2026-01-01 --to 2026-01-01 2>&1 ;;
	esac
}
while read -r f s k; do
	sec="$f $s"
	[ "$s" = "[agency" ] && { sec="$f [agency ID]"; k=${k#ID] }; }
	out=$(probe "$sec" "$k")
	if grep -q "$k: unknown key" <<<"$out"; then
		bad "$sec $k is documented, but the program refuses it: $out"
	fi
done <"$DIR/doc.txt"
for sec in "broker.ini [broker]" "broker.ini [agency ID]" "agent.ini [agent]" "coord.ini [client]" \
	"agent.ini [privacy]" "coord.ini [report]"; do
	out=$(probe "$sec" "no_such_key")
	grep -q "no_such_key: unknown key" <<<"$out" ||
		bad "$sec: a made-up key was not refused as unknown (the probe cannot tell): $out"
done

# --- 3. the examples ---------------------------------------------------------------------

shopt -s globstar nullglob
jsons=("$SRC"/examples/**/*.json)
[ ${#jsons[@]} -gt 0 ] || bad "no examples/**/*.json found"
for j in "${jsons[@]}"; do
	out=$(rete message check "$j" 2>&1) || bad "rete message check ${j#"$SRC"/}: $out"
done

# The example network in DIR/net laid out as the examples expect it
# (broker/broker.ini with ../keys, agents/ID/agent.ini with ../../keys,
# coord.ini with keys/).
net="$DIR/net"
mkdir -p "$net/keys" "$net/broker" "$net/agents"
ids=$(grep -ohE '(\.\./)*keys/[a-z0-9.-]+\.(key|pub)' "$SRC/examples/broker.ini" \
	"$SRC"/examples/agents/*.ini "$SRC/examples/coord.ini" |
	sed -E 's#.*/##; s#\.(key|pub)$##' | sort -u)
for id in $ids; do
	rete keygen "$id" --out "$net/keys" >/dev/null || bad "rete keygen $id"
done

lp=$(free_port) && ep=$(free_port "$lp") || { bad "no free TCP port"; exit 1; }
listen="tcp://127.0.0.1:$lp"
events="tcp://127.0.0.1:$ep"

sed -e "s#^listen = .*#listen = $listen#" -e "s#^events = .*#events = $events#" \
	"$SRC/examples/broker.ini" >"$net/broker/broker.ini"
out=$(rete-broker -c "$net/broker/broker.ini" --check-config 2>&1) ||
	bad "examples/broker.ini does not pass rete-broker --check-config: $out"
# The untouched file too (its endpoints are part of what is checked).
cp "$SRC/examples/broker.ini" "$net/broker/original.ini"
out=$(rete-broker -c "$net/broker/original.ini" --check-config 2>&1) ||
	bad "examples/broker.ini (unchanged) does not pass rete-broker --check-config: $out"

agents=()
for ini in "$SRC"/examples/agents/*.ini; do
	id=$(sed -n 's/^id = //p' "$ini")
	[ -n "$id" ] || { bad "${ini#"$SRC"/}: no 'id = ' line"; continue; }
	agents+=("$id")
	mkdir -p "$net/agents/$id"
	sed -e "s#^broker = .*#broker = $listen#" "$ini" >"$net/agents/$id/agent.ini"
done
sed -e "s#^broker = .*#broker = $listen#" -e "s#^events = .*#events = $events#" \
	"$SRC/examples/coord.ini" >"$net/coord.ini"
if [ -f "$SRC/examples/audit.ini" ]; then
	sed -e "s#^broker = .*#broker = $listen#" -e "s#^events = .*#events = $events#" \
		"$SRC/examples/audit.ini" >"$net/audit.ini"
fi

rete-broker -c "$net/broker/broker.ini" --init >"$net/broker.log" 2>&1 &
PIDS+=($!)
for id in "${agents[@]}"; do
	rete-agent -c "$net/agents/$id/agent.ini" >"$net/$id.log" 2>&1 &
	PIDS+=($!)
done

# Wait (polling the broker with a deadline: there is no event to wait on
# across processes) until the coordinator's view shows every agent connected.
want=$(printf '%s\n' "${agents[@]}" | sort | tr '\n' ' ')
got=""
end=$((SECONDS + 60))
while :; do
	view=$(rete monitor -c "$net/coord.ini" --once --json 2>"$net/monitor.err") && rc=0 || rc=$?
	if [ $rc -eq 0 ]; then
		got=$(jq -r '.agencies[] | select(.connected) | .id' <<<"$view" | sort | tr '\n' ' ')
		[ "$got" = "$want" ] && break
	fi
	if [ $SECONDS -ge $end ]; then
		bad "the example network did not come up within 60 s: connected '$got', expected '$want' (monitor exit $rc: $(cat "$net/monitor.err"))"
		for f in "$net"/*.log; do
			echo "---- ${f##*/} ----" >&2
			tail -n 15 "$f" >&2
		done
		break
	fi
	sleep 0.2
done

# The auditor's example file: a verification at a distance through the
# broker, as the auditor.
if [ -f "$net/audit.ini" ]; then
	out=$(rete audit verify -c "$net/audit.ini" --state "$net/audit.state" 2>&1) ||
		bad "examples/audit.ini: rete audit verify -c audit.ini --state FILE failed: $out"
fi

if [ $FAILS -gt 0 ]; then
	echo "test_docs_config: $FAILS failure(s)" >&2
	exit 1
fi
echo "test_docs_config: $(wc -l <"$DIR/code.txt") configuration keys documented and accepted, $compared defaults equal;" \
	"${#jsons[@]} example messages valid; examples/broker.ini, ${#agents[@]} agent.ini files," \
	"coord.ini and audit.ini work together"
