#!/usr/bin/env bash
# Run the official Engine.IO and Socket.IO protocol test suites against pushgate's test-only
# protocol-suite server (src/bin/protocol-suite-server.rs).
#
# The suites are not part of this repository: pass the `test-suite` folders of checkouts of
# socketio/engine.io-protocol and socketio/socket.io-protocol:
#
#   [RUNS=30] scripts/protocol-suites.sh path/to/engine.io-protocol/test-suite path/to/socket.io-protocol/test-suite
#
# Each suite's dependencies are installed with `npm ci` from its own lockfile. The server listens
# on 127.0.0.1:3000, as the suites expect. Each suite runs RUNS times (default 1) against the
# same server; the failed runs are counted, and the exit status is 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
eio=$(cd "$1" && pwd)
sio=$(cd "$2" && pwd)
runs=${RUNS:-1}

cargo build --release --bin protocol-suite-server
target=${CARGO_TARGET_DIR:-target}
"$target/release/protocol-suite-server" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break
  sleep 0.1
done

for suite in "$eio" "$sio"; do
  (cd "$suite" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })
done
failed=0
for run in $(seq 1 "$runs"); do
  for suite in "$eio" "$sio"; do
    echo "== run $run: $suite"
    (cd "$suite" && npx mocha --reporter dot test-suite.js) || failed=$((failed + 1))
  done
done
echo "$failed failed runs of $((2 * runs))"
[ "$failed" -eq 0 ]
