#!/usr/bin/env bash
# Run one load-generator scenario against pushgate as a single node and as a cluster, in one
# go, on this machine (127.0.0.1 only), and print each configuration's result line, its nodes'
# memory and CPU, and a table of the headline figures side by side.
#
#   bench/cluster.sh <idle|fanout|unicast|idle-broadcast|connect-storm> [pushgate-loadgen options...]
#
# e.g.  bench/cluster.sh unicast --users 2000 --rate 2000 --duration 10              # (a)
#       bench/cluster.sh unicast --users 2000 --rate 1000 --duration 10 --via http   # (b)
#       BENCH_CONFIGS=rabbitmq:5 bench/cluster.sh idle-broadcast --clients 90000 \
#           --duration 30 --deadline 400                                             # (c)
#
# BENCH_CONFIGS lists the configurations to run, in order, as <CLUSTER>:<nodes> (default
# "off:1 rabbitmq:1 rabbitmq:3": a lone node, a cluster of one, a cluster of three). For each
# one the script creates a RabbitMQ vhost of its own (deleted afterwards, with every queue and
# stream in it), starts the nodes (release build, each under `ulimit -n 20000`, its own NODE_ID
# and port from BENCH_CLUSTER_PORT, default 29100, upwards; one CLUSTER_NAME per run), waits
# for every /ready, runs the load generator with --targets (clients round-robin over the
# nodes, HTTP push connections too) and --server-pid (RSS and CPU summed over the nodes), reads
# each node's RSS, peak RSS and CPU time from /proc before and after, and stops the nodes.
# Every run is bounded in time (the load generator's --deadline, `timeout` around it, bounded
# waits for /ready) and a trap stops the nodes and deletes the vhost on any exit.
#
# Environment: BENCH_CONFIGS, BENCH_CLUSTER_PORT, BENCH_OUT (target/bench: result lines),
# BENCH_JWT_SECRET / BENCH_API_KEY (fixed bench values by default), PUSHGATE_BIN (another
# pushgate build); other server settings (e.g. QUOTA_COALESCE_MS) pass through the
# environment. It sets no system limit itself (it changes nothing outside its processes); it
# checks the open-files limit, the ephemeral port range against the server ports and the
# connections per source/destination pair, and conntrack's table size, and says what is short.
set -euo pipefail

usage() {
  sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 1 ] || usage
SCENARIO=$1
shift
case "$SCENARIO" in
  idle | fanout | unicast | idle-broadcast | connect-storm) ;;
  *) usage ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CONFIGS=${BENCH_CONFIGS:-off:1 rabbitmq:1 rabbitmq:3}
BASE_PORT=${BENCH_CLUSTER_PORT:-29100}
OUT=${BENCH_OUT:-$ROOT/target/bench}
export BENCH_JWT_SECRET=${BENCH_JWT_SECRET:-pushgate-bench-secret-not-for-production-0123}
export BENCH_API_KEY=${BENCH_API_KEY:-pushgate-bench-api-key}
RUN_ID="$$$(date +%s)"
NOFILE=20000
mkdir -p "$OUT"

for cfg in $CONFIGS; do
  case "$cfg" in
    off:1 | rabbitmq:[1-9] | rabbitmq:[1-9][0-9]) ;;
    off:*) echo "CLUSTER=off is a lone node: $cfg (a broadcast or a room would reach one node's clients only)" >&2; exit 2 ;;
    *) echo "BENCH_CONFIGS: bad configuration $cfg (want off:1 or rabbitmq:<nodes>)" >&2; exit 2 ;;
  esac
done

# The options the script itself needs to know.
DURATION=10
DEADLINE=""
CLIENTS=1000
prev=""
for a in "$@"; do
  case "$prev" in
    --duration) DURATION=$a ;;
    --deadline) DEADLINE=$a ;;
    --clients | --users) CLIENTS=$a ;;
  esac
  case "$a" in
    --duration=*) DURATION=${a#--duration=} ;;
    --deadline=*) DEADLINE=${a#--deadline=} ;;
    --clients=* | --users=*) CLIENTS=${a#*=} ;;
  esac
  prev=$a
done
# The outer time limit: the load generator's own deadline (default --duration + 60 s) + 60 s.
LIMIT=$(awk -v d="$DURATION" -v dl="$DEADLINE" 'BEGIN { printf "%d", (dl != "" ? dl : d + 60) + 60 }')

# --- system limits -------------------------------------------------------------------------
check_limits() {
  local hard most_nodes=1 n low high range sources=16 per_pair
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt $NOFILE ]; then
    echo "== the hard limit on open files is $hard: each node and load-generator process needs" \
      "$NOFILE (ulimit -Hn; /etc/security/limits.conf or the container's nofile)" >&2
    exit 1
  fi
  for cfg in $CONFIGS; do
    n=${cfg#*:}
    [ "$n" -gt "$most_nodes" ] && most_nodes=$n
  done
  read -r low high </proc/sys/net/ipv4/ip_local_port_range
  if [ $((BASE_PORT + most_nodes)) -gt "$low" ] && [ "$BASE_PORT" -le "$high" ]; then
    echo "== server ports $BASE_PORT.. fall in the ephemeral range $low-$high: a client socket" \
      "of an earlier run may hold one; set BENCH_CLUSTER_PORT below $low" >&2
    exit 1
  fi
  # Each client socket is one 4-tuple; the kernel needs a free local port per (source address,
  # server port) pair: clients / (nodes * sources) of the smallest configuration.
  range=$((high - low + 1))
  for cfg in $CONFIGS; do
    n=${cfg#*:}
    per_pair=$(((CLIENTS + n * sources - 1) / (n * sources)))
    if [ "$per_pair" -gt "$range" ]; then
      echo "== $cfg: $CLIENTS clients over $n node(s) and $sources source addresses need" \
        "$per_pair local ports per pair, the ephemeral range $low-$high has $range" >&2
      exit 1
    fi
    if [ $(((CLIENTS + n - 1) / n + 1000)) -gt $NOFILE ]; then
      echo "== $cfg: $CLIENTS clients over $n node(s) is more than a node's $NOFILE open files" \
        "allow: use more nodes" >&2
      exit 1
    fi
  done
  if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
    local ct
    ct=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
    if [ "$ct" -lt $((2 * CLIENTS + 10000)) ]; then
      echo "== nf_conntrack_max is $ct: loopback connections are tracked too; $CLIENTS clients" \
        "may fill the table (sysctl -w net/netfilter/nf_conntrack_max=$((2 * CLIENTS + 10000)))" >&2
    fi
  fi
  echo "== limits: nofile hard $hard, ephemeral ports $low-$high, somaxconn" \
    "$(cat /proc/sys/net/core/somaxconn)" >&2
}
check_limits

echo "== building release binaries" >&2
cargo build --release --quiet -p pushgate --bin pushgate -p pushgate-loadgen --bin pushgate-loadgen
LOADGEN="$ROOT/target/release/pushgate-loadgen"
PUSHGATE="${PUSHGATE_BIN:-$ROOT/target/release/pushgate}"
scripts/ensure-rabbitmq.sh

# --- nodes ---------------------------------------------------------------------------------
PIDS=()
PORTS=()
VHOST=""

stop_nodes() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  PORTS=()
}

delete_vhost() {
  if [ -n "$VHOST" ]; then
    rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || echo "== could not delete vhost $VHOST" >&2
  fi
  VHOST=""
}

cleanup() {
  stop_nodes
  delete_vhost
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # port pid seconds
  local port=$1 pid=$2 secs=$3
  for _ in $(seq 1 $((secs * 10))); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "== node on port $port exited" >&2; return 1; }
    sleep 0.1
  done
  echo "== node on port $port not ready within ${secs}s: $(curl -sS "http://127.0.0.1:$port/ready" 2>&1)" >&2
  return 1
}

# One JSON object per node: port, pid, RSS, peak RSS, CPU seconds (utime + stime).
node_stats() {
  local i pid ticks rss hwm cpu sep=""
  ticks=$(getconf CLK_TCK)
  printf '['
  for i in "${!PIDS[@]}"; do
    pid=${PIDS[$i]}
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo null)
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo null)
    cpu=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null |
      awk -v t="$ticks" '{ printf "%.2f", ($12 + $13) / t }' || echo null)
    printf '%s{"port":%s,"pid":%s,"rss_kib":%s,"hwm_kib":%s,"cpu_secs":%s}' \
      "$sep" "${PORTS[$i]}" "$pid" "${rss:-null}" "${hwm:-null}" "${cpu:-null}"
    sep=","
  done
  printf ']'
}

log_records() { # how many appends the nodes' records to the log carried, from their /metrics
  local port records=0 appends=0 r a
  for port in "${PORTS[@]}"; do
    r=$(curl -sS "http://127.0.0.1:$port/metrics" | awk '$1 == "pushgate_cluster_log_records_appended_total" {print $2}')
    a=$(curl -sS "http://127.0.0.1:$port/metrics" | awk '$1 == "pushgate_cluster_log_appends_total" {print $2}')
    records=$((records + ${r:-0}))
    appends=$((appends + ${a:-0}))
  done
  echo "== log: the nodes appended $records records carrying $appends appends" \
    "($(awk -v a="$appends" -v r="$records" 'BEGIN { printf "%.2f", r ? a / r : 0 }') per record)" >&2
}

run_config() { # mode nodes loadgen-args...
  local mode=$1 nodes=$2 label i port log
  shift 2
  label="$mode-$nodes"
  VHOST="pg-bench-$RUN_ID-$label"
  rabbitmqctl -q add_vhost "$VHOST" >/dev/null
  rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
  local amqp="amqp://guest:guest@127.0.0.1:5672/$VHOST"
  for i in $(seq 1 "$nodes"); do
    port=$((BASE_PORT + i - 1))
    log="$OUT/cluster-$SCENARIO-$label-node$i.log"
    (
      ulimit -n $NOFILE
      export PORT=$port HOST=127.0.0.1 JWT_SECRET=$BENCH_JWT_SECRET PUSH_API_KEY=$BENCH_API_KEY \
        NODE_ID="bench-$label-$i-$RUN_ID" RABBITMQ_URL=$amqp CLUSTER=$mode \
        CLUSTER_NAME="bench-$RUN_ID" RABBITMQ_QUEUE_EXPIRES_MS=10000 CORS_ORIGIN='*' RUST_LOG=warn
      exec "$PUSHGATE"
    ) >"$log" 2>&1 &
    PIDS+=($!)
    PORTS+=("$port")
  done
  for i in "${!PIDS[@]}"; do wait_ready "${PORTS[$i]}" "${PIDS[$i]}" 90; done
  local targets pids broker=() bpid rc=0
  targets=$(printf '127.0.0.1:%s,' "${PORTS[@]}")
  pids=$(printf '%s,' "${PIDS[@]}")
  bpid=$(pgrep -o -x beam.smp || true)
  if [ -n "$bpid" ]; then broker=(--broker-pid "$bpid"); fi
  echo "== $SCENARIO against CLUSTER=$mode, $nodes node(s) (pids ${pids%,}, ports ${targets%,})" >&2
  local before after result="$OUT/cluster-$SCENARIO-$label.json"
  before=$(node_stats)
  timeout --kill-after=10 "$LIMIT" "$LOADGEN" "$SCENARIO" "$@" --targets "${targets%,}" \
    --server-pid "${pids%,}" --amqp-url "$amqp" "${broker[@]}" >"$result" || rc=$?
  after=$(node_stats)
  if [ "$mode" = rabbitmq ]; then log_records; fi
  printf '{"config":"%s","cluster":"%s","nodes":%s,"before":%s,"after":%s}\n' \
    "$label" "$mode" "$nodes" "$before" "$after" >"$OUT/cluster-$SCENARIO-$label.nodes.json"
  stop_nodes
  delete_vhost
  cat "$result" "$OUT/cluster-$SCENARIO-$label.nodes.json"
  if [ $rc -ne 0 ]; then
    echo "== $label: load generator exit code $rc (1: losses or failures, 2: error)" >&2
  fi
}

LABELS=()
for cfg in $CONFIGS; do
  run_config "${cfg%%:*}" "${cfg#*:}" "$@"
  LABELS+=("${cfg%%:*}-${cfg#*:}")
done

echo
python3 bench/cluster_table.py "$OUT" "$SCENARIO" "${LABELS[@]}" ||
  echo "== (python3 bench/cluster_table.py failed: the result lines are above)" >&2
