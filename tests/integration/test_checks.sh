#!/usr/bin/env bash
# test_checks.sh — the configuration checks check, and the backup works as
# written (issue 17).
#
#   keys          rete-agent --check-config and rete --check-config (agent.ini,
#                 coord.ini, audit.ini) open the keys: a key at mode 0644, a
#                 missing key, a .pub given as a secret (by name and, renamed,
#                 by content), a .key given as public (by name and by content):
#                 exit 2, every problem in a sentence, no key material printed,
#                 no chmod advice for a public key; a good file: exit 0.
#   folders       a spool that is a file is a problem; sent/ and failed/ on
#                 another file system (a tmpfs in a mount namespace) are a
#                 note: the agent copies there.
#   broker        rete-broker --check-config: its key pointed at its .pub; the
#                 store read-only: another schema, another origin, a backup
#                 copy (refused at start without --restore, with the same
#                 sentence).
#   config file   -c given /dev/zero, a folder, a 5 MiB file or a named pipe
#                 without a writer (which blocked the open): exit 2 at
#                 once, saying what it is (rete-broker, rete-agent, rete).
#   named pipes   an evidence bundle, --broker-key (evidence, audit) or the
#                 key a broker.ini or agent.ini names, a named pipe without a
#                 writer: exit 2 at once, "not a regular file" (the open
#                 blocked for good before).
#   encoding      agent.ini, coord.ini, the console's accounts file and a witness
#                 policy saved
#                 as UTF-16 (either byte order): exit 2 with broker.ini's
#                 sentence (UTF-16, save it as UTF-8), not a syntax error and
#                 every key missing; saved as UTF-8 with a byte order mark:
#                 fine (rete --check-config took it for no [section]).
#                 A value with a byte that is no UTF-8 (saved as
#                 Windows-1252): FILE:LINE: [section] key, the byte, its
#                 column and "save the file as UTF-8"; in a comment: fine.
#   endpoints     an endpoint ZeroMQ would refuse or use otherwise than
#                 written (a port beyond 65535, taken modulo 65536; * or 0,
#                 a port the system picks; no port; another scheme; junk after
#                 the port; * as the broker's host; an IPv6 address without
#                 brackets, with a zone id or link-local) in broker.ini, agent.ini,
#                 coord.ini or audit.ini: --check-config exits 2 naming it,
#                 and rete-broker and rete-agent do not start on it (exit 2,
#                 no store created); the forms that work stay fine. An
#                 address not of this machine: a problem (start: exit 2, the
#                 bind's sentence says why); a host name to listen on (ZeroMQ
#                 resolves none there): a problem; the port in use: a note.
#                 The same for IPv6 ([::1], [::], an address not of this
#                 machine); [::] takes IPv4 too, so events or metrics on its
#                 port are a problem, beside * they are not.
#   backup        rete store backup into a missing parent creates it, the files
#                 are 0600, --verify passes on a good copy and fails (exit 1)
#                 on a garbled one.
set -uo pipefail
: "${RETE_BIN:?set by ctest}" "${RETE_SOURCE_DIR:?set by ctest}"
export PATH="$RETE_BIN:$PATH"
src=$RETE_SOURCE_DIR
. "$(dirname "$0")/lib.sh"
itest_init test-checks

mkdir -p "$DIR/broker" "$DIR/agents/social.mantova"
make_keys broker.mantova social.mantova cpi.mantova asst.mantova family.mantova coord.mantova audit.region
k=$DIR/keys
sed -e "s#^listen = .*#listen = ipc://$DIR/broker.sock#" \
	-e "s#^events = .*#events = ipc://$DIR/events.sock#" \
	"$src/examples/broker.ini" >"$DIR/broker/broker.ini"
agent=$DIR/agents/social.mantova/agent.ini
cp "$src/examples/agents/social.mantova.ini" "$agent"
cp "$src/examples/coord.ini" "$DIR/coord.ini"
cp "$src/examples/audit.ini" "$DIR/audit.ini"
# set_key FILE KEY VALUE: KEY = VALUE in FILE's section
set_key() { sed -i -e "0,/^$2 = /s#^$2 = .*#$2 = $3#" "$1"; }

# --- keys ------------------------------------------------------------------
what="agent: a good agent.ini"
run rete-agent --check-config -c "$agent"
expect 0 "fine"
run rete --check-config -c "$agent"
expect 0 "fine"

what="agent: key at mode 0644"
chmod 644 "$k/social.mantova.key"
run rete-agent --check-config -c "$agent"
expect 2 "social.mantova.key" "0644" "chmod 600"
run rete --check-config -c "$agent"
expect 2 "social.mantova.key" "0644"
lacks "$(cat "$k/social.mantova.key")"
chmod 600 "$k/social.mantova.key"

what="agent: a missing key"
set_key "$agent" key ../../keys/nobody.key
run rete-agent --check-config -c "$agent"
expect 2 "nobody.key"

what="agent: a .pub given as the secret key"
set_key "$agent" key ../../keys/social.mantova.pub
run rete-agent --check-config -c "$agent"
expect 2 "social.mantova.pub" "public key"
lacks "chmod" "$(cat "$k/social.mantova.pub")"

what="agent: a public key renamed, given as the secret key"
cp "$k/social.mantova.pub" "$k/social.secret"
chmod 644 "$k/social.secret"
set_key "$agent" key ../../keys/social.secret
run rete-agent --check-config -c "$agent"
expect 2 "social.secret" "public key"
lacks "chmod" "$(cat "$k/social.mantova.pub")"
set_key "$agent" key ../../keys/social.mantova.key

what="agent: a .key given as the broker's public key"
set_key "$agent" broker_key ../../keys/broker.mantova.key
run rete-agent --check-config -c "$agent"
expect 2 "broker.mantova.key" "secret key"
lacks "$(cat "$k/broker.mantova.key")"

what="agent: a secret seed renamed, given as the broker's public key"
# 32 bytes 0xef: a seed like any other, and no Ed25519 point
printf '7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+8=\n' >"$k/broker.pubkey"
chmod 600 "$k/broker.pubkey"
set_key "$agent" broker_key ../../keys/broker.pubkey
run rete-agent --check-config -c "$agent"
expect 2 "broker.pubkey" "not a public key"
lacks "7+/v7+/v"
set_key "$agent" broker_key ../../keys/broker.mantova.pub

what="coord.ini: key at mode 0644"
chmod 644 "$k/coord.mantova.key"
run rete --check-config -c "$DIR/coord.ini"
expect 2 "coord.mantova.key" "0644"
chmod 600 "$k/coord.mantova.key"
run rete --check-config -c "$DIR/coord.ini"
expect 0 "fine"

what="audit.ini: a .key as the broker key"
set_key "$DIR/audit.ini" broker_key keys/broker.mantova.key
run rete --check-config -c "$DIR/audit.ini"
expect 2 "broker.mantova.key" "secret key"
lacks "$(cat "$k/broker.mantova.key")"
set_key "$DIR/audit.ini" broker_key keys/broker.mantova.pub
run rete --check-config -c "$DIR/audit.ini"
expect 0 "fine"

what="rete --check-config: a broker.ini"
run rete --check-config -c "$DIR/broker/broker.ini"
expect 2 "rete-broker"

# --- the configuration file itself ------------------------------------------
# -c given a device, a folder or a file far larger than any configuration
# (a store's data.mdb by mistake): exit 2 at once, saying what it is; not a
# hang reading /dev/zero, not "[agent] id is missing" about a folder.
truncate -s 5M "$DIR/big.ini"
mkfifo "$DIR/fifo.ini"
for cmd in "rete-broker --check-config -c" "rete-broker -c" "rete-agent --check-config -c" "rete-agent -c" \
	"rete --check-config -c" "rete status -c"; do
	what="$cmd /dev/zero"
	run timeout 20 $cmd /dev/zero
	expect 2 "/dev/zero" "not a regular file"
	what="$cmd FOLDER"
	run timeout 20 $cmd "$DIR"
	expect 2 "$DIR" "is a folder"
	what="$cmd a 5 MiB file"
	run timeout 20 $cmd "$DIR/big.ini"
	expect 2 "big.ini" "larger than"
	what="$cmd a named pipe nobody writes to"
	run timeout 20 $cmd "$DIR/fifo.ini"
	expect 2 "fifo.ini" "not a regular file"
done

# --- the other files a command reads: a named pipe without a writer ----------
# (rev-edges, session 17) rete evidence verify opened its bundle, and every
# reader of a key file its key, before checking it was a regular file: on
# a named pipe nobody writes to, the open blocked for good. Each is a
# sentence at once now; a key file a broker.ini names, too.
mkfifo "$DIR/fifo.json" "$DIR/fifo.pub" "$DIR/fifo.key"
what="rete evidence verify on a named pipe"
run timeout 20 rete evidence verify "$DIR/fifo.json" --broker-key "$k/broker.mantova.pub"
expect 2 "fifo.json" "not a regular file"
echo '{}' >"$DIR/empty-bundle.json"
what="rete evidence verify --broker-key a named pipe"
run timeout 20 rete evidence verify "$DIR/empty-bundle.json" --broker-key "$DIR/fifo.pub"
expect 2 "fifo.pub" "not a regular file"
what="rete audit verify --broker-key a named pipe"
run timeout 20 rete audit verify "$DIR/broker" --broker-key "$DIR/fifo.pub"
expect 2 "fifo.pub" "not a regular file"
sed -e "s#^key = ../keys/broker.mantova.key#key = $DIR/fifo.key#" \
	"$DIR/broker/broker.ini" >"$DIR/broker/fifo-key.ini"
# the broker's state file a named pipe: refused with the other files the
# configuration names, before anything opens it
sed -e "s#^\[broker\]#[broker]\nstate = $DIR/fifo.state#" \
	"$DIR/broker/broker.ini" >"$DIR/broker/fifo-state.ini"
mkfifo "$DIR/fifo.state"
what="rete-broker, its state file a named pipe"
run timeout 20 rete-broker -c "$DIR/broker/fifo-state.ini"
expect 2 "fifo.state" "not a regular file"
what="rete-broker --check-config, its key a named pipe"
run timeout 20 rete-broker --check-config -c "$DIR/broker/fifo-key.ini"
expect 2 "fifo.key" "not a regular file"
sed -e "s#^key = .*social.mantova.key#key = $DIR/fifo.key#" "$agent" >"$agent.fifo"
what="rete-agent --check-config, its key a named pipe"
run timeout 20 rete-agent --check-config -c "$agent.fifo"
expect 2 "fifo.key" "not a regular file"

# --- the encoding of a configuration file ----------------------------------
# Saved as UTF-16 (Windows' "Unicode", byte order mark FF FE or FE FF):
# agent.ini, coord.ini and the console's accounts file are refused with
# the sentence broker.ini gets (test_broker_config.sh), not as a line that
# is no 'key = value' followed by every key "missing". Saved as UTF-8 with
# a byte order mark (Notepad's): read as without one, by every reader.
# utf16 FILE [be]: FILE in UTF-16 (little-endian; big-endian with be), with
# its byte order mark, in FILE.16
utf16() {
	if [ "${2:-}" = be ]; then
		{ printf '\xfe\xff'; iconv -f UTF-8 -t UTF-16BE "$1"; } >"$1.16"
	else
		{ printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$1"; } >"$1.16"
	fi
}
# utf8bom FILE: FILE with a UTF-8 byte order mark first, in FILE.bom
utf8bom() { { printf '\xef\xbb\xbf'; cat "$1"; } >"$1.bom"; }
for order in le be; do
	utf16 "$agent" $order
	utf16 "$DIR/coord.ini" $order
	for cmd in "rete-agent --check-config -c $agent.16" "rete-agent -c $agent.16" \
		"rete --check-config -c $agent.16" "rete --check-config -c $DIR/coord.ini.16" \
		"rete status -c $agent.16" "rete monitor --once -c $DIR/coord.ini.16" \
		"rete console -c $DIR/coord.ini.16"; do
		what="UTF-16 ($order): $cmd"
		run timeout 20 $cmd
		expect 2 "UTF-16" "save it as UTF-8"
		lacks "not 'key = value'" "is missing" "holds no [section]"
	done
done
utf8bom "$agent"
utf8bom "$DIR/coord.ini"
for cmd in "rete-agent --check-config -c $agent.bom" "rete --check-config -c $agent.bom" \
	"rete --check-config -c $DIR/coord.ini.bom"; do
	what="UTF-8 with a byte order mark: $cmd"
	run timeout 20 $cmd
	expect 0 "fine"
done
# encoded FILE WHAT LACKING...: FILE, which coord-users.ini names (read by
# the console's check), saved as UTF-16 and then as UTF-8 with a byte order
# mark: refused with the sentence, then fine; neither time with a sentence
# of LACKING (the file's own line errors). FILE is put back.
encoded() {
	local f=$1 name=$2
	shift 2
	cp "$f" "$f.good"
	utf16 "$f.good"
	cp "$f.good.16" "$f"
	what="$name in UTF-16"
	run rete --check-config -c "$DIR/coord-users.ini"
	expect 2 "$(basename "$f")" "UTF-16" "save it as UTF-8"
	lacks "$@"
	utf8bom "$f.good"
	cp "$f.good.bom" "$f"
	what="$name in UTF-8 with a byte order mark"
	run rete --check-config -c "$DIR/coord-users.ini"
	expect 0 "fine"
	lacks "$@"
	cp "$f.good" "$f"
}
# the accounts file ([console] users) and a witness policy ([console]
# witnesses; an agent's witnesses too)
cp "$DIR/coord.ini" "$DIR/coord-users.ini"
printf '\n[console]\nusers = console-users\nwitnesses = w.policy\n' >>"$DIR/coord-users.ini"
printf 'correct horse battery\n' | rete console passwd alice -c "$DIR/coord-users.ini" >/dev/null 2>&1 ||
	bad "rete console passwd alice failed"
printf 'witness social.mantova %s\nwitness cpi.mantova %s\n' "$(cat "$k/social.mantova.pub")" \
	"$(cat "$k/cpi.mantova.pub")" >"$DIR/w.policy"
what="the accounts file and a witness policy in UTF-8"
run rete --check-config -c "$DIR/coord-users.ini"
expect 0 "fine"
encoded "$DIR/console-users" "the accounts file" "is not USER:HASH" "not a user name"
encoded "$DIR/w.policy" "a witness policy" "NUL byte" "unknown directive"
# Saved as Windows-1252 or Latin-1 (an accented letter is one byte that is
# no UTF-8), agent.ini and coord.ini: the key's line, section and key, the
# byte and its column, and how to save the file (s13 rev-edges #6); the same
# byte in a comment is left alone.
# (its own data folder: an agent that started on it must leave no store
# where the tests below expect none)
sed -e "s#^spool = .*#spool = spool-citt\xe0#" -e "s#^data = .*#data = data-1252#" \
	"$agent" >"$agent.1252"
for cmd in "rete-agent --check-config -c $agent.1252" "rete --check-config -c $agent.1252" \
	"rete status -c $agent.1252" "rete-agent -c $agent.1252"; do
	what="Windows-1252 in agent.ini: $cmd"
	run timeout 20 $cmd
	expect 2 "agent.ini.1252:17: [agent] spool: byte 0xE0 at column 19 is not UTF-8" \
		"save the file as UTF-8"
done
[ ! -e "$DIR/agents/social.mantova/spool-citt"* ] || bad "$what: a spool was made"
rm -rf "$DIR/agents/social.mantova/spool-citt"* "$DIR/agents/social.mantova/data-1252"
sed -e "s#^key = keys/coord.mantova.key#key = keys/coord.mantova-citt\xe0.key#" \
	"$DIR/coord.ini" >"$DIR/coord.ini.1252"
for cmd in "rete --check-config -c $DIR/coord.ini.1252" "rete monitor --once -c $DIR/coord.ini.1252"; do
	what="Windows-1252 in coord.ini: $cmd"
	run timeout 20 $cmd
	expect 2 "coord.ini.1252:12: [client] key: byte 0xE0 at column 30 is not UTF-8" \
		"save the file as UTF-8"
done
{ cat "$agent"; printf '; Citt\xe0 di Mantova\n'; } >"$agent.comment"
what="Windows-1252 in a comment of agent.ini"
run rete-agent --check-config -c "$agent.comment"
expect 0 "fine"

# --- endpoints -------------------------------------------------------------
bini=$DIR/broker/broker.ini
# an IPv6 loopback (::1 on lo): IPv6 addresses to listen on are tried
v6=false
grep -q '^00000000000000000000000000000001 .* lo$' /proc/net/if_inet6 2>/dev/null && v6=true
# with_key FILE KEY VALUE CMD...: run CMD with KEY = VALUE in FILE, then put
# FILE back as it was
with_key() {
	local f=$1 key=$2 value=$3
	shift 3
	cp "$f" "$f.good"
	set_key "$f" "$key" "$value"
	run "$@"
	mv "$f.good" "$f"
}
bad_bind=("tcp://127.0.0.1:99999" "tcp://127.0.0.1:*" "tcp://127.0.0.1:0" "tcp://127.0.0.1:7700x"
	"tcp://127.0.0.1" "tcp://127.0.0.1:-1" "http://127.0.0.1:7700" "tcp://[::1:7700" "tcp://:7700"
	"tcp://host name:7700" "ipc://" "ipc://*" "tcp://::1:7700" "tcp://[fe80::1%eth0]:7700"
	"tcp://[::1]:65536" "tcp://[::1]7700" "tcp://10.0.0.5;10.0.0.1:7700" "tcp://[ff02::1]:7711"
	"tcp://[ff0e::1]:7711" "tcp://[::ffff:127.0.0.1]:7700")
for ep in "${bad_bind[@]}"; do
	what="broker: listen = $ep"
	with_key "$bini" listen "$ep" rete-broker -c "$bini" --check-config
	expect 2 "[broker] listen: '$ep'" "tcp://HOST:PORT"
	with_key "$bini" listen "$ep" timeout 30 rete-broker -c "$bini" --init
	expect 2 "[broker] listen: '$ep'"
	[ ! -e "$DIR/broker/store" ] || bad "$what: the start created the store: $out"
	rm -rf "$DIR/broker/store"
done
what="broker: listen on an address not of this machine"
with_key "$bini" listen "tcp://192.0.2.1:7700" rete-broker -c "$bini" --check-config # TEST-NET-1 (RFC 5737)
expect 2 "[broker] listen: tcp://192.0.2.1:7700 is not an address of this machine" "* for all"
with_key "$bini" listen "tcp://192.0.2.1:7700" timeout 30 rete-broker -c "$bini" --init
expect 2 "cannot bind tcp://192.0.2.1:7700 ([broker] listen)" "not one of this machine's"
rm -rf "$DIR/broker/store"
if $v6; then
	what="broker: listen on an IPv6 address not of this machine"
	with_key "$bini" listen "tcp://[2001:db8::1]:7700" rete-broker -c "$bini" --check-config # documentation prefix (RFC 3849)
	expect 2 "[broker] listen: tcp://[2001:db8::1]:7700 is not an address of this machine" "[::] for all"
	with_key "$bini" listen "tcp://[2001:db8::1]:7700" timeout 30 rete-broker -c "$bini" --init
	expect 2 "cannot bind tcp://[2001:db8::1]:7700 ([broker] listen)" "not one of this machine's"
	rm -rf "$DIR/broker/store"
fi
# events or metrics on listen's port: a problem where listen holds the
# address (the start's second bind would fail), else fine. [::] holds
# every IPv6 and IPv4 address; * every IPv4 one only (metrics on [::1] may
# share its port: IPV6_V6ONLY).
# LISTEN KEY VALUE VERDICT, one a line
shared=(
	"tcp://127.0.0.1:7700 events tcp://*:7700 shared"
	"tcp://127.0.0.1:7700 events tcp://127.0.0.1:7701 fine"
	"tcp://127.0.0.1:7700 metrics 127.0.0.1:7700 shared"
	"tcp://127.0.0.1:7700 metrics 127.0.0.1:9464 fine"
	"tcp://*:7700 metrics [::1]:7700 fine"
	"tcp://[::]:7700 metrics [::1]:7700 shared"
	"tcp://[::]:7700 metrics 127.0.0.1:7700 shared"
	"tcp://[::]:7700 events tcp://127.0.0.1:7700 shared"
	"tcp://[::]:7700 events tcp://[::1]:7700 shared"
	"tcp://[::]:7700 events tcp://[::1]:7701 fine"
	"tcp://[::1]:7700 metrics 127.0.0.1:7700 fine"
)
cp "$bini" "$bini.orig"
for line in "${shared[@]}"; do
	read -r l key value verdict <<<"$line"
	what="broker: $key = $value beside listen = $l"
	cp "$bini.orig" "$bini"
	set_key "$bini" listen "$l"
	if [ "$key" = metrics ]; then
		sed -i -e "s#^\[broker\]\$#[broker]\nmetrics = $value#" "$bini"
	else
		set_key "$bini" events "$value"
	fi
	run rete-broker -c "$bini" --check-config
	if [ "$verdict" = fine ]; then
		expect 0 "fine"
	else
		expect 2 "[broker] $key: '$value'" "7700" "listen" "a port of"
	fi
done
mv "$bini.orig" "$bini"
# metrics on an IPv6 address the endpoints refuse too (no zone id, so no
# link-local one; no multicast; an IPv4 address without brackets)
for line in "[fe80::1]:9464|a link-local address (fe80::/10) is not accepted" \
	"[ff02::1]:9464|a multicast address (ff00::/8) is not accepted" \
	"[::ffff:127.0.0.1]:7700|an IPv4 address goes without brackets: 127.0.0.1:7700"; do
	value=${line%%|*}
	what="broker: metrics = $value"
	cp "$bini" "$bini.good"
	sed -i -e "s#^\[broker\]\$#[broker]\nmetrics = $value#" "$bini"
	run rete-broker -c "$bini" --check-config
	expect 2 "[broker] metrics: '$value'" "${line#*|}"
	mv "$bini.good" "$bini"
done
what="broker: events = tcp://127.0.0.1:65536"
with_key "$bini" events "tcp://127.0.0.1:65536" rete-broker -c "$bini" --check-config
expect 2 "[broker] events: 'tcp://127.0.0.1:65536'" "65535"
what="broker: listen on a host name"
with_key "$bini" listen "tcp://localhost:7700" rete-broker -c "$bini" --check-config
expect 2 "'localhost' is no network interface of this machine" "without resolving host names"
with_key "$bini" listen "tcp://localhost:7700" timeout 30 rete-broker -c "$bini" --init
expect 2 "cannot bind tcp://localhost:7700 ([broker] listen)" "no host names"
rm -rf "$DIR/broker/store"
if $v6; then
	good_bind=("tcp://[::1]:7700" "tcp://[::]:7700" "tcp://[0:0::1]:65535")
else
	echo "note: no IPv6 loopback (::1 on lo) here: listen on ::1 not tried"
	good_bind=()
fi
for ep in "tcp://*:7700" "tcp://0.0.0.0:65535" "tcp://127.0.0.1:7700" "tcp://lo:7700" "${good_bind[@]}"; do
	what="broker: listen = $ep"
	with_key "$bini" listen "$ep" rete-broker -c "$bini" --check-config
	expect 0 "fine" "listen $ep"
done

bad_connect=("tcp://127.0.0.1:99999" "tcp://*:7700" "tcp://127.0.0.1:*" "tcp://127.0.0.1"
	"tcp://127.0.0.1:7700x" "http://127.0.0.1:7700" "tcp://[fe80::1%eth0:7700" "ipc://" "tcp://::1:7700"
	"tcp://[fe80::1%eth0]:7700" "tcp://[::]:7700" "tcp://[::1]:0" "tcp://10.0.0.5:0;[::1]:7700"
	"tcp://127.0.0.1;127.0.0.1:7798" "tcp://[::1];[::1]:7798" "tcp://lo;[::1]:7798"
	"tcp://[ff02::1]:7711" "tcp://[::ffff:127.0.0.1]:7700" "tcp://[::]:0;[::1]:7700")
for ep in "${bad_connect[@]}"; do
	what="agent: broker = $ep"
	with_key "$agent" broker "$ep" rete-agent --check-config -c "$agent"
	expect 2 "[agent] broker: '$ep'" "tcp://HOST:PORT"
	with_key "$agent" broker "$ep" rete --check-config -c "$agent"
	expect 2 "[agent] broker: '$ep'"
	with_key "$agent" broker "$ep" timeout 30 rete-agent -c "$agent"
	expect 2 "[agent] broker: '$ep'"
done
for ep in "tcp://localhost:7700" "tcp://broker.comune.mantova.it:7700" "tcp://10.0.0.5:0;10.0.0.1:7700" \
	"ipc:///run/rete/broker.sock" "tcp://[::1]:7700" "tcp://[2001:db8::5]:7700"; do
	what="agent: broker = $ep"
	with_key "$agent" broker "$ep" rete-agent --check-config -c "$agent"
	expect 0 "fine" "broker $ep"
done
what="coord.ini: events without a port"
with_key "$DIR/coord.ini" events "tcp://127.0.0.1" rete --check-config -c "$DIR/coord.ini"
expect 2 "[client] events: 'tcp://127.0.0.1'" "tcp://HOST:PORT"
what="audit.ini: broker with a port beyond 65535"
with_key "$DIR/audit.ini" broker "tcp://127.0.0.1:77000" rete --check-config -c "$DIR/audit.ini"
expect 2 "broker: 'tcp://127.0.0.1:77000'" "65535"

# --- folders ---------------------------------------------------------------
what="agent: the spool is a file"
touch "$DIR/agents/social.mantova/notafolder"
set_key "$agent" spool notafolder
run rete-agent --check-config -c "$agent"
expect 2 "notafolder" "not a folder"
set_key "$agent" spool spool

what="agent: sent/ and failed/ on another file system"
if unshare -m true 2>/dev/null; then
	sp=$DIR/agents/social.mantova/spool
	mkdir -p "$sp/outbox" "$sp/sent" "$sp/failed" "$sp/inbox"
	run unshare -m bash -c "mount --make-rprivate / && mount -t tmpfs -o size=1m tmpfs '$sp/sent' &&
		mount -t tmpfs -o size=1m tmpfs '$sp/failed' && rete-agent --check-config -c '$agent'"
	expect 0 "another file system" "copies"
else
	echo "test_checks: $what: SKIPPED: no mount namespace here (unshare -m refused)" >&2
fi

# --- the agent's store: a newer agent's schema ----------------------------
# An agent store holding meta's "schema" record 99, as a later rete-agent
# would leave it (written with lmdb-utils' mdb_load): --check-config says
# so, and the agent does not start on it.
what="agent: a store a newer agent wrote"
adata=$DIR/agents/social.mantova/data
mkdir -p "$adata"
printf 'VERSION=3\nformat=bytevalue\ndatabase=meta\ntype=btree\nHEADER=END\n 736368656d61\n 3939\nDATA=END\n' |
	mdb_load "$adata" || bad "$what: mdb_load could not write the store"
run rete-agent --check-config -c "$agent"
expect 2 "[agent] data" "has schema 99" "a newer rete-agent wrote it"
run timeout 30 rete-agent -c "$agent"
[ "$rc" != 0 ] && [ "$rc" != 124 ] || bad "$what: rete-agent exited $rc on it"
grep -qF "has schema 99" <<<"$out" || bad "$what: the agent did not say why: $out"
run rete status -c "$agent"
[ "$rc" != 0 ] && grep -qF "has schema 99" <<<"$out" || bad "$what: rete status exited $rc: $out"
# left as it was: meta alone, its record 99
[ "$(mdb_dump -l "$adata")" = meta ] && mdb_dump -s meta "$adata" | grep -qx ' 3939' ||
	bad "$what: the store changed: $(mdb_dump -l "$adata"; mdb_dump -s meta "$adata")"
rm -rf "$adata"

# --- the broker ------------------------------------------------------------
what="broker: its key pointed at its .pub"
set_key "$bini" key ../keys/broker.mantova.pub
run rete-broker -c "$bini" --check-config
expect 2 "broker.mantova.pub" "public key"
lacks "chmod"
chmod 644 "$k/broker.mantova.pub"
cp "$k/broker.mantova.pub" "$k/broker.secret"
set_key "$bini" key ../keys/broker.secret
run rete-broker -c "$bini" --check-config
expect 2 "broker.secret" "public key"
lacks "chmod"
set_key "$bini" key ../keys/broker.mantova.key

# a store: the broker starts once with --init, then stops
rete-broker -c "$bini" --init >"$DIR/broker/broker.log" 2>&1 &
bpid=$!
PIDS+=($bpid)
wait_for 30 grep -q "started:" "$DIR/broker/broker.log" || bad "the broker did not start: $(cat "$DIR/broker/broker.log")"
kill -TERM "$bpid"
wait "$bpid" || bad "the broker's clean stop exited $?"

what="broker: a good store"
run rete-broker -c "$bini" --check-config
expect 0 "fine" "store"

port=$(free_port)
cp "$bini" "$bini.good"
hosts=(127.0.0.1)
$v6 && hosts+=("[::1]")
for i in "${!hosts[@]}"; do
	h=${hosts[$i]}
	blog=$DIR/broker/broker-port$i.log # one each: the next start's log is new
	what="broker: its port on $h in use"
	set_key "$bini" listen "tcp://$h:$port"
	rete-broker -c "$bini" >"$blog" 2>&1 &
	bpid=$!
	PIDS+=($bpid)
	wait_for 30 grep -q "started:" "$blog" || bad "the broker did not start on $h:$port: $(cat "$blog")"
	run rete-broker -c "$bini" --check-config
	expect 0 "note: [broker] listen: tcp://$h:$port is in use" "fine"
	kill -TERM "$bpid"
	wait "$bpid" || bad "the broker's clean stop exited $?"
done
mv "$bini.good" "$bini"

what="broker: a store of another origin"
sed -i -e "s#^origin = .*#origin = rete.example/elsewhere#" "$bini"
run rete-broker -c "$bini" --check-config
expect 2 "rete.example/elsewhere"
# the very sentence the start logs
start_out=$(rete-broker -c "$bini" 2>&1)
sentence=$(sed -n 's/^.* error: //p' <<<"$start_out" | head -n 1)
[ -n "$sentence" ] || bad "$what: the start said no error: $start_out"
expect 2 "$sentence"
git_origin=$(grep "^origin" "$src/examples/broker.ini" | head -n 1)
sed -i -e "s#^origin = .*#$git_origin#" "$bini"

what="broker: a store of another schema"
cp -a "$DIR/broker/store" "$DIR/store-schema"
printf 'schema\n\\00\\00\\00\\63\n' | mdb_load -T -s meta "$DIR/store-schema" || bad "mdb_load failed"
sed -i -e "s#^data = .*#data = ../store-schema#" "$bini"
run rete-broker -c "$bini" --check-config
start_out=$(rete-broker -c "$bini" 2>&1)
sentence=$(sed -n 's/^.* error: //p' <<<"$start_out" | head -n 1)
[ -n "$sentence" ] || bad "$what: the start said no error: $start_out"
expect 2 "schema" "$sentence"
sed -i -e "s#^data = .*#data = store#" "$bini"

# --- backup ----------------------------------------------------------------
what="backup into a missing parent"
run rete store backup "$DIR/broker/store" "$DIR/backups/2026/copy1"
expect 0 "backed up"
for f in "$DIR"/backups/2026/copy1/*; do
	m=$(stat -c %a "$f")
	[ "$m" = 600 ] || bad "$what: $f has mode $m, expected 600"
done

what="broker: a backup copy as the store"
sed -i -e "s#^data = .*#data = ../backups/2026/copy1#" "$bini"
run rete-broker -c "$bini" --check-config
start_out=$(rete-broker -c "$bini" 2>&1)
sentence=$(sed -n 's/^.* error: //p' <<<"$start_out" | head -n 1)
[ -n "$sentence" ] || bad "$what: the start said no error: $start_out"
expect 2 "copy" "--restore" "$sentence"
run rete-broker -c "$bini" --check-config --restore
expect 0 "fine"
sed -i -e "s#^data = .*#data = store#" "$bini"

what="backup --verify on a good copy"
run rete store backup "$DIR/broker/store" "$DIR/backups/copy2" --verify --broker-key "$k/broker.mantova.pub"
expect 0 "backed up" "verified"

what="backup --verify on a garbled copy"
# garble entry 0 of a copy (one byte of its value), then back that up
mdb_dump -s entries "$DIR/backups/copy2" >"$DIR/entries.dump"
awk 'BEGIN{d=0} /^HEADER=END/{print; d=1; next} d==1 && /^ /{n++; if(n==2){c=substr($0,length($0),1); r=(c=="0")?"1":"0"; $0=substr($0,1,length($0)-1) r} } {print}' \
	"$DIR/entries.dump" >"$DIR/entries.garbled"
cmp -s "$DIR/entries.dump" "$DIR/entries.garbled" && bad "$what: the dump was not changed"
mdb_load -s entries "$DIR/backups/copy2" <"$DIR/entries.garbled" || bad "mdb_load failed"
run rete store backup "$DIR/backups/copy2" "$DIR/backups/copy3" --verify --broker-key "$k/broker.mantova.pub"
expect 1 "entry 0"

# --- an agent on a key the broker refuses -----------------------------------
what="agent: a refused key is said once, not at every reconnect"
rete-broker -c "$bini" >"$DIR/broker/broker2.log" 2>&1 &
bpid=$!
PIDS+=($bpid)
wait_for 30 grep -q "started:" "$DIR/broker/broker2.log" || bad "the broker did not start again: $(cat "$DIR/broker/broker2.log")"
mkdir -p "$DIR/stranger"
rete keygen social.mantova --out "$DIR/stranger" >/dev/null
old_agent=$DIR/agents/social.mantova/old.ini
sed -e "s#^key = .*#key = $DIR/stranger/social.mantova.key#" \
	-e "s#^broker = .*#broker = ipc://$DIR/broker.sock#" -e "s#^data = .*#data = data-old#" \
	-e "s#^spool = .*#spool = spool-old#" "$agent" >"$old_agent"
printf 'reconnect_min = 100ms\nreconnect_max = 100ms\n' >>"$old_agent"
rete-agent -v -c "$old_agent" >"$DIR/old-agent.log" 2>&1 &
apid=$!
PIDS+=($apid)
attempts() { [ "$(grep -c "connecting to" "$DIR/old-agent.log")" -ge 5 ]; }
wait_for 30 attempts || bad "$what: the agent did not try 5 times: $(cat "$DIR/old-agent.log")"
kill -TERM "$apid"
wait "$apid" || bad "the agent's clean stop exited $?"
# the first refusal's line once; the others counted, and the count said at
# the stop (test_ops_logs checks the count)
n=$(grep -c "the broker refused our key" "$DIR/old-agent.log")
[ "$n" = 1 ] || bad "$what: the refusal was logged $n times in $(grep -c "connecting to" "$DIR/old-agent.log") attempts"
grep -q "the broker still refused our key when the agent stopped: [0-9]* more refusals" "$DIR/old-agent.log" ||
	bad "$what: the count of refusals held back was not said at the stop: $(cat "$DIR/old-agent.log")"
kill -TERM "$bpid"
wait "$bpid" || bad "the broker's clean stop exited $?"

if [ "$FAILS" -gt 0 ]; then
	echo "test_checks: $FAILS failure(s)" >&2
	exit 1
fi
echo "test_checks: all passed"
