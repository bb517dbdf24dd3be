#!/usr/bin/env bash
# Run one load-generator scenario against pushgate, then against the Node peer, and print both
# result lines and the ratio of their headline figures.
#
#   bench/run.sh <idle|fanout|unicast|connect-storm|recover> [pushgate-loadgen options...]
#
# e.g.  bench/run.sh fanout --clients 2000 --rate 200 --duration 10
#       bench/run.sh unicast --users 2000 --rate 1000
#       BENCH_ONLY=pushgate bench/run.sh idle --clients 5000 --duration 5
#       bench/run.sh recover --clients 10000     # pushgate only unless BENCH_ONLY=both
#
# It builds the release binaries, installs the Node peer's packages (npm ci) and, for scenarios
# that publish to RabbitMQ, makes sure a local broker runs (scripts/ensure-rabbitmq.sh, which
# starts one with config/rabbitmq/advanced.config) and prints its version and settings. Each
# server runs alone, on loopback, with its own NODE_ID and its own exchange (bench.pushgate,
# bench.node) so that neither sees the other's events nor anybody else's. Every run is bounded
# in time (the load generator's --deadline, and `timeout` around it).
#
# Environment: BENCH_ONLY=pushgate|node (one target only), BENCH_PG_PORT (29006),
# BENCH_NODE_PORT (29007), BENCH_OUT (target/bench: where result lines are kept),
# BENCH_JWT_SECRET / BENCH_API_KEY (a fixed bench secret and key by default), PUSHGATE_BIN (the
# pushgate binary to run instead of target/release/pushgate, e.g. another build for an A/B).
# `recover` runs against pushgate only by default (BENCH_ONLY=both adds the Node peer, started
# with socket.io's connectionStateRecovery for RECOVERY_WINDOW_MS, default 120000); both servers
# get RECOVERY_WINDOW_MS / RECOVERY_HISTORY_BYTES from the environment, and so does the load
# generator (the RSS bound it reports against).
set -euo pipefail

usage() {
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 1 ] || usage
SCENARIO=$1
shift
case "$SCENARIO" in
  idle | fanout | unicast | connect-storm | recover) ;;
  *) usage ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "$SCENARIO" = recover ]; then ONLY=${BENCH_ONLY:-pushgate}; else ONLY=${BENCH_ONLY:-both}; fi
# Below the kernel's ephemeral range (32768-60999 by default): a client socket of an earlier run
# left in TIME_WAIT on 127.0.0.1:<port> would otherwise refuse the next server its port. Not
# 30006, pushgate's default, which a server of one's own may hold.
PG_PORT=${BENCH_PG_PORT:-29006}
NODE_PORT=${BENCH_NODE_PORT:-29007}
OUT=${BENCH_OUT:-$ROOT/target/bench}
export BENCH_JWT_SECRET=${BENCH_JWT_SECRET:-pushgate-bench-secret-not-for-production-0123}
export BENCH_API_KEY=${BENCH_API_KEY:-pushgate-bench-api-key}
RUN_ID="$$-$(date +%s)"
mkdir -p "$OUT"

# Does this run publish to RabbitMQ? (unicast defaults to it, fanout to the HTTP API)
VIA=""
DURATION=10
prev=""
for a in "$@"; do
  case "$prev" in
    --via) VIA=$a ;;
    --duration) DURATION=$a ;;
  esac
  case "$a" in
    --via=*) VIA=${a#--via=} ;;
    --duration=*) DURATION=${a#--duration=} ;;
  esac
  prev=$a
done
if [ -z "$VIA" ]; then
  if [ "$SCENARIO" = unicast ]; then VIA=amqp; else VIA=http; fi
fi
# The outer time limit: the load generator's own deadline is --duration + 60 s.
LIMIT=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 120 }')

echo "== building release binaries" >&2
cargo build --release --quiet -p pushgate --bin pushgate -p pushgate-loadgen --bin pushgate-loadgen
LOADGEN="$ROOT/target/release/pushgate-loadgen"
if [ "$ONLY" != pushgate ]; then
  if ! (cd bench/node-peer && npm ls --depth=0 >/dev/null 2>&1); then
    echo "== npm ci in bench/node-peer" >&2
    (cd bench/node-peer && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
if [ "$VIA" = amqp ]; then
  scripts/ensure-rabbitmq.sh
  # The broker is part of the path measured: say which one, with the setting that moves its
  # tail most (config/rabbitmq/advanced.config, BENCHMARKS.md finding 26).
  broker_info=$(rabbitmqctl -q eval 'io:format("RabbitMQ ~s, queue_index_max_journal_entries ~p~n",
    [rabbit_misc:version(), application:get_env(rabbit, queue_index_max_journal_entries, 32768)]).' \
    2>/dev/null | head -n 1 || true)
  echo "== broker: ${broker_info:-unknown (rabbitmqctl eval failed)}" >&2
fi

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT INT TERM

# A server's queues outlive it by RABBITMQ_QUEUE_EXPIRES_MS (a restarted node needs them), and
# while they exist they stay bound to the bench exchange: the next run's events would be copied
# into them too, and the broker would store them and collect the garbage of a queue nobody
# reads, on the cores the run shares (BENCHMARKS.md, finding 28). So each run deletes its
# server's queues once it has stopped the server, and before the first run the bench queues
# that nobody consumes (left by interrupted runs).
delete_bench_queues() { # idle | of <node id>
  [ "$VIA" = amqp ] || return 0
  local q queues
  if ! queues=$(rabbitmqctl -q list_queues name consumers 2>/dev/null); then
    echo "== cannot list the broker's queues with rabbitmqctl: queues of earlier runs may still" \
      "be bound to the bench exchanges and slow this one (BENCHMARKS.md, finding 28)" >&2
    return 0
  fi
  printf '%s\n' "$queues" |
    awk -v which="$1" -v node="${2:-}" '
      $1 !~ /^pushgate(-node)?\.bench-(pg|pushgate|node)-/ { next }
      which == "idle" && $2 == "0" { print $1 }
      which == "of" && index($1, "." node ".") { print $1 }' |
    while read -r q; do
      rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null 2>&1 || echo "== could not delete queue $q" >&2
    done
}

wait_for() { # url, seconds
  local url=$1 secs=$2
  for _ in $(seq 1 $((secs * 10))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2
  return 1
}

run_target() { # target, port, exchange
  local target=$1 port=$2 exchange=$3
  local node_id="bench-$target-$RUN_ID"
  shift 3
  local log="$OUT/$SCENARIO-$target.server.log"
  if [ "$target" = pushgate ]; then
    PORT=$port HOST=127.0.0.1 JWT_SECRET=$BENCH_JWT_SECRET PUSH_API_KEY=$BENCH_API_KEY \
      NODE_ID="$node_id" RABBITMQ_EXCHANGE=$exchange RABBITMQ_QUEUE_EXPIRES_MS=10000 \
      CORS_ORIGIN='*' RUST_LOG=warn \
      "${PUSHGATE_BIN:-$ROOT/target/release/pushgate}" >"$log" 2>&1 &
  else
    local recovery=${RECOVERY_WINDOW_MS:-0}
    if [ "$SCENARIO" = recover ]; then recovery=${RECOVERY_WINDOW_MS:-120000}; fi
    PORT=$port HOST=127.0.0.1 JWT_SECRET=$BENCH_JWT_SECRET PUSH_API_KEY=$BENCH_API_KEY \
      NODE_ID="$node_id" RABBITMQ_EXCHANGE=$exchange RABBITMQ_QUEUE_EXPIRES_MS=10000 \
      CORS_ORIGIN='*' RECOVERY_WINDOW_MS=$recovery \
      node bench/node-peer/server.js >"$log" 2>&1 &
  fi
  SERVER_PID=$!
  wait_for "http://127.0.0.1:$port/health" 15
  if [ "$VIA" = amqp ]; then
    wait_for "http://127.0.0.1:$port/ready" 30
  fi
  echo "== $SCENARIO against $target (pid $SERVER_PID, port $port)" >&2
  local rc=0 broker=()
  if [ "$VIA" = amqp ]; then
    # The broker's CPU is part of the cost of an AMQP push: report it too (read only).
    local bpid
    bpid=$(pgrep -o -x beam.smp || true)
    if [ -n "$bpid" ]; then broker=(--broker-pid "$bpid"); fi
  fi
  timeout --kill-after=10 "$LIMIT" "$LOADGEN" "$SCENARIO" "$@" --target "$target" \
    --port "$port" --server-pid "$SERVER_PID" --exchange "$exchange" "${broker[@]}" \
    >"$OUT/$SCENARIO-$target.json" || rc=$?
  stop_server
  delete_bench_queues of "$node_id"
  cat "$OUT/$SCENARIO-$target.json"
  if [ $rc -ne 0 ]; then
    echo "== $target: load generator exit code $rc (1: losses or failures, 2: error)" >&2
  fi
}

ARGS=("$@")
delete_bench_queues idle
if [ "$ONLY" != node ]; then
  run_target pushgate "$PG_PORT" bench.pushgate "${ARGS[@]}"
fi
if [ "$ONLY" != pushgate ]; then
  run_target node "$NODE_PORT" bench.node "${ARGS[@]}"
fi
if [ "$ONLY" = both ]; then
  echo
  "$LOADGEN" compare "$OUT/$SCENARIO-pushgate.json" "$OUT/$SCENARIO-node.json"
fi
