#!/usr/bin/env bash
# Make sure a RabbitMQ broker listens on 127.0.0.1:5672: install Debian's rabbitmq-server when it
# is missing, start it detached when it is not running, then wait for the port.
#
# A broker this script starts runs with (a copy of) config/rabbitmq/advanced.config, the
# settings we recommend (see the file), unless RABBITMQ_ADVANCED_CONFIG_FILE is set already: a
# path that does not exist means RabbitMQ's stock settings. A running broker is left as it is.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if port_open; then
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "installing rabbitmq-server (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq rabbitmq-server >/dev/null
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  if [ -z "${RABBITMQ_ADVANCED_CONFIG_FILE:-}" ]; then
    # The broker runs as its own user, which may not be allowed to read this checkout (it
    # would then start with the stock settings without a word): it gets a readable copy.
    RABBITMQ_ADVANCED_CONFIG_FILE=$(mktemp /tmp/pushgate-rabbitmq-advanced.XXXXXX.config)
    cp "$ROOT/config/rabbitmq/advanced.config" "$RABBITMQ_ADVANCED_CONFIG_FILE"
    chmod 644 "$RABBITMQ_ADVANCED_CONFIG_FILE"
    export RABBITMQ_ADVANCED_CONFIG_FILE
  fi
  echo "starting rabbitmq-server (advanced config: $RABBITMQ_ADVANCED_CONFIG_FILE)..." >&2
  # The Debian package may try to start the service itself; a detached node is what we use.
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi
for _ in $(seq 1 120); do
  if port_open; then
    rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    echo "rabbitmq is up on 127.0.0.1:5672" >&2
    exit 0
  fi
  sleep 0.5
done
echo "rabbitmq did not open 127.0.0.1:5672 within 60 s" >&2
exit 1
