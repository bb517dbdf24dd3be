#!/usr/bin/env bash
# pushgate's own work per delivery, in instructions, counted by callgrind: a figure that does
# not move with the machine's other load, for comparing two builds on a noisy machine.
#
#   bench/instructions.sh [pushgate binary] [-- more pushgate-loadgen fanout options...]
#
# e.g.  bench/instructions.sh
#       CLIENTS=100 RATE=200 PUSH_COALESCE_MS=50 bench/instructions.sh /tmp/pushgate-before
#       SCENARIO=connect-storm bench/instructions.sh      # instructions per connect instead
#
# It runs the same fan-out (HTTP API; CLIENTS 100, RATE 10 pushes/s) twice against pushgate
# under `valgrind --tool=callgrind`, for SHORT (5) and LONG (15) seconds, and divides the
# difference of the two instruction totals by the difference of the deliveries: start-up,
# connects and shutdown cancel out. Only user-space instructions are counted (not the kernel's
# socket work), and the rate must stay low enough for the server to keep up under valgrind
# (about 50 times slower): a saturated server batches differently from one run to the next.
# Server settings pass through the environment (e.g. PUSH_COALESCE_MS). Loopback only.
# SCENARIO=connect-storm counts per authenticated connect instead: a connect storm at
# CONNECT_RATE (100) a second, each client closing after its `welcome`, for SHORT and LONG
# seconds.
# KEEP_CALLGRIND=dir keeps both runs' callgrind files there (callgrind.SHORT, callgrind.LONG),
# for comparing two builds function by function (`callgrind_annotate --inclusive=no`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=target/release/pushgate
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  BIN=$1
  shift
fi
if [ "${1:-}" = "--" ]; then shift; fi
SHORT=${SHORT:-5}
LONG=${LONG:-15}
PORT=${BENCH_PG_PORT:-39016}
export BENCH_JWT_SECRET=${BENCH_JWT_SECRET:-pushgate-bench-secret-not-for-production-0123}
export BENCH_API_KEY=${BENCH_API_KEY:-pushgate-bench-api-key}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

command -v valgrind >/dev/null || {
  echo "installing valgrind (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq valgrind >/dev/null
}
cargo build --release --quiet -p pushgate --bin pushgate -p pushgate-loadgen --bin pushgate-loadgen

# One run: prints "<instructions> <deliveries>".
run() { # seconds
  local secs=$1 pid
  shift
  PORT=$PORT HOST=127.0.0.1 JWT_SECRET=$BENCH_JWT_SECRET PUSH_API_KEY=$BENCH_API_KEY \
    NODE_ID="instr-$$" RABBITMQ_URL=amqp://127.0.0.1:1/%2f RUST_LOG=error \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$secs" "$BIN" >"$OUT/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
    sleep 0.2
  done
  local scenario=(fanout --clients "${CLIENTS:-100}" --rate "${RATE:-10}" --connect-concurrency 20
    "$@" --duration "$secs")
  if [ "${SCENARIO:-fanout}" = connect-storm ]; then
    scenario=(connect-storm --rates "${CONNECT_RATE:-100}" --step-secs "$secs" "$@")
  fi
  timeout --kill-after=10 $((secs + 240)) target/release/pushgate-loadgen "${scenario[@]}" \
    --port "$PORT" >"$OUT/result.$secs" 2>"$OUT/loadgen.$secs" || {
    kill -TERM "$pid"
    wait "$pid" || true
    cat "$OUT/loadgen.$secs" >&2
    return 1
  }
  kill -TERM "$pid"
  wait "$pid" || true
  local ir deliveries
  ir=$(callgrind_annotate "$OUT/cg.$secs" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  deliveries=$(python3 -c '
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(sum(s["connected"] for s in results["steps"]) if "steps" in results else results["deliveries"])
' "$OUT/result.$secs")
  echo "$ir $deliveries"
}

read -r ir1 d1 < <(run "$SHORT" "$@")
read -r ir2 d2 < <(run "$LONG" "$@")
if [ -n "${KEEP_CALLGRIND:-}" ]; then
  mkdir -p "$KEEP_CALLGRIND"
  cp "$OUT/cg.$SHORT" "$KEEP_CALLGRIND/callgrind.$SHORT"
  cp "$OUT/cg.$LONG" "$KEEP_CALLGRIND/callgrind.$LONG"
  echo "deliveries: $d1 / $d2" >"$KEEP_CALLGRIND/deliveries"
fi
python3 - "$ir1" "$d1" "$ir2" "$d2" "${SCENARIO:-fanout}" <<'EOF'
import sys
ir1, d1, ir2, d2 = map(int, sys.argv[1:5])
per = (ir2 - ir1) / (d2 - d1)
unit = "connect" if sys.argv[5] == "connect-storm" else "delivery"
print(f"{per:.0f} instructions per {unit} ({ir2 - ir1:,} over {d2 - d1:,} {unit}s; "
      f"totals {ir1:,} / {ir2:,})")
EOF
