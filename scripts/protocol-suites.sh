#!/usr/bin/env bash
# Run the official Engine.IO and Socket.IO protocol test suites against pushgate's test-only
# protocol-suite server (src/bin/protocol-suite-server.rs).
#
# The suites are not part of this repository: pass the `test-suite` folders of checkouts of
# socketio/engine.io-protocol and socketio/socket.io-protocol:
#
#   scripts/protocol-suites.sh path/to/engine.io-protocol/test-suite path/to/socket.io-protocol/test-suite
#
# Each suite's dependencies are installed with `npm ci` from its own lockfile. The server listens
# on 127.0.0.1:3000, as the suites expect.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
eio=$(cd "$1" && pwd)
sio=$(cd "$2" && pwd)

cargo build --release --bin protocol-suite-server
./target/release/protocol-suite-server &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break
  sleep 0.1
done

status=0
for suite in "$eio" "$sio"; do
  echo "== $suite"
  (cd "$suite" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } \
    && npx mocha --reporter dot test-suite.js) || status=1
done
exit $status
