#!/usr/bin/env bash
# bench/peer-rabbitmq.sh [--messages N] — rete's broker
# beside RabbitMQ, measured in the same run on the same machine. NOT run in
# CI: it installs rabbitmq-server and librabbitmq-dev from Debian's packages
# (apt-get, as root), starts a private RabbitMQ node on loopback only (its own
# ports, data folder, Erlang cookie and epmd), and measures:
#   - rete: `rete_bench --wire-only` (raw Ed25519 rates, durable ingest with
#     50 agencies x 64 in flight, closed loop, receipt latency at 100, 1000
#     and 5000 msg/s; fsync on);
#   - RabbitMQ: bench/peer/rabbitmq_client.c (built here with cc and
#     pkg-config librabbitmq): the same 1 KiB messages, persistent
#     (delivery_mode 2), publisher confirms, a durable queue, a consumer
#     acking each one; 50 publisher connections x 64 unconfirmed for the
#     throughput, one publisher in open loop for the confirm latency at 100,
#     1000 and 5000 msg/s; once with a classic durable queue and once with a
#     quorum queue (which always fsyncs before confirming);
# then prints both side by side and stops RabbitMQ (and its epmd).
set -euo pipefail
cd "$(dirname "$0")/.."

messages=40000
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "peer-rabbitmq.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

# 1. packages
need=()
for p in rabbitmq-server librabbitmq-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "peer-rabbitmq: installing ${need[*]}"
  $SUDO apt-get update -qq
  # no service start by the package: we start our own node below
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rete-peer-rabbitmq-XXXXXX")"
node_port=$((20000 + RANDOM % 10000))
dist_port=$((node_port + 1))
epmd_port=$((node_port + 2))
export HOME="$work/home"                 # the Erlang cookie stays in here
export RABBITMQ_NODENAME="rete-bench-$$@localhost"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$node_port
export RABBITMQ_DIST_PORT=$dist_port
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=$epmd_port
export RABBITMQ_MNESIA_BASE="$work/mnesia"
export RABBITMQ_LOG_BASE="$work/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$work/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$work/rabbitmq"
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
echo "[]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
cat >"$work/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$node_port
loopback_users.guest = true
EOF
rbin=/usr/lib/rabbitmq/bin
server_pid=""
stop_rabbit() {
  if [ -n "$server_pid" ]; then
    "$rbin/rabbitmqctl" -q shutdown >/dev/null 2>&1 || kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
  rm -rf -- "$work"
}
trap stop_rabbit EXIT

# 2. the client
cc -O2 -Wall -Wextra -Werror -o "$work/rabbitmq_client" bench/peer/rabbitmq_client.c \
  $(pkg-config --cflags --libs librabbitmq) -lpthread

# 3. rete first (RabbitMQ not running yet: it would take CPU while idle)
build="${RETE_BENCH_BUILD:-build-bench}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target rete_bench rete-broker -j"$(nproc)" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*: //'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rete: rete_bench --wire-only ..."
"$build/bin/rete_bench" --wire-only --json "$work/rete.json" >"$work/rete.txt"

# 4. RabbitMQ
echo "RabbitMQ: starting a private node on 127.0.0.1:$node_port ..."
"$rbin/rabbitmq-server" >"$work/server.out" 2>&1 &
server_pid=$!
# await_startup fails at once while the node is not registered yet: retry
deadline=$((SECONDS + 120))
until "$rbin/rabbitmqctl" -q await_startup >/dev/null 2>&1; do
  if [ $SECONDS -gt $deadline ] || ! kill -0 "$server_pid" 2>/dev/null; then
    echo "peer-rabbitmq: RabbitMQ did not start:" >&2
    tail -n 30 "$work/server.out" >&2
    exit 2
  fi
  sleep 1
done
rmq_version="$("$rbin/rabbitmqctl" -q version 2>/dev/null || echo '?')"
# rete's fourth offered load: half its ingest bound (the row's name says it)
half="$(jq -r '.results[] | select(.key == "latencyp50_half") | .name' "$work/rete.json" |
  sed -n 's/.*@ \([0-9]*\)\/s.*/\1/p')"
[ -n "$half" ] || half=5000
for qt in classic quorum; do
  echo "RabbitMQ: $qt durable queue ..."
  "$work/rabbitmq_client" --port "$node_port" --queue-type "$qt" --messages "$messages" \
    --publishers 50 --window 64 --rates "100,1000,5000,$half" --seconds 5 >"$work/rmq-$qt.txt"
  # the next run starts from an empty queue of its own type
  "$rbin/rabbitmqctl" -q delete_queue rete-bench >/dev/null 2>&1 || true
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# 5. side by side
rete() { jq -r --arg k "$1" '.results[] | select(.key == $k) | .value' "$work/rete.json"; }
rmq() { sed -n "s/^$2=//p" "$work/rmq-$1.txt"; }
echo
printf '%-40s %14s %14s %14s\n' "1 KiB messages, durable, acked" "rete" "RMQ classic" "RMQ quorum"
printf '%-40s %14.0f %14s %14s\n' "ingest, msg/s (50 senders x 64)" "$(rete ingestN)" \
  "$(rmq classic throughput)" "$(rmq quorum throughput)"
printf '%-40s %14s %14s %14s\n' "  p50 / p99 under that load, ms" "-" \
  "$(rmq classic throughput_confirm_p50_ms)/$(rmq classic throughput_confirm_p99_ms)" \
  "$(rmq quorum throughput_confirm_p50_ms)/$(rmq quorum throughput_confirm_p99_ms)"
for r in 100 1000 5000 "$half"; do
  k="$r"; [ "$r" = "$half" ] && k=half
  for q in p50 p99 p999; do
    printf '%-40s %14.2f %14s %14s\n' "receipt/confirm $q @ $r/s, ms" "$(rete latency${q}_$k)" \
      "$(rmq classic latency_${r}_${q}_ms)" "$(rmq quorum latency_${r}_${q}_ms)"
  done
done
printf '%-40s %14.0f %14s %14s\n' "closed loop (rete: sign, log, verify, ack)" "$(rete loop)" "-" "-"
echo
# The targets of issue 15, with their ratios (rete_bench prints the same rows).
echo "targets (issue 15)                            measured  target"
printf '%-40s %9.2f  %s\n' "broker CPU beyond 1 verify, verifications" "$(rete targetBeyondN)" "<= 0.35"
printf '%-40s %9.2f  %s\n' "ingest, all cores, of bound" "$(rete targetIngestN)" ">= 0.75"
printf '%-40s %9.2f  %s\n' "ingest, 1 verify thread, of 1-core verify" "$(rete targetIngest1)" ">= 0.9"
printf '%-40s %9.2f  %s\n' "closed loop, of bound" "$(rete targetLoop)" ">= 0.5"
q99="$(rmq quorum latency_1000_p99_ms)"
printf '%-40s %9.2f  %s\n' "receipt p99 @ $half/s (half bound), ms" "$(rete latencyp99_half)" "<= 20"
printf '%-40s %9.2f  %s\n' "receipt p99 @ 1000/s / quorum's p99" \
  "$(awk -v a="$(rete latencyp99_1000)" -v b="$q99" 'BEGIN { print (b > 0 ? a / b : 0) }')" "<= 1"
echo
echo "rete: a receipt is an inclusion proof to the checkpoint the broker signs once per"
echo "fsync'd LMDB commit; every message's signature is verified. RabbitMQ $rmq_version: confirms after the queue took"
echo "the message (classic: may confirm a message already consumed and acked without"
echo "writing it; quorum: after its Raft log is fsync'd). RabbitMQ verifies no signature."
echo "consumed: classic $(rmq classic consumed), quorum $(rmq quorum consumed)"
echo
echo "rete's full table:"
cat "$work/rete.txt"
