#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: it installs and starts what the
# tests need (RabbitMQ from Debian's packages, Node.js and chromium when absent, the Node test
# client from the committed lockfile), then runs the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-rabbitmq.sh

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "installing nodejs and npm (Debian packages)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nodejs npm >/dev/null
fi
# The admin UI's browser test drives Debian's chromium (through playwright-core).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
# Reinstall the Node test client when the lockfile changed since the last install.
lock=tests/e2e/package-lock.json
stamp=tests/e2e/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo test --workspace --all-targets "$@"
