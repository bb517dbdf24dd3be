# syntax=docker/dockerfile:1
# pushgate's image: `docker build -t pushgate .` (BuildKit, the default builder).

# Build stage: the dependencies first, in a layer of their own that only a Cargo.toml or
# Cargo.lock change rebuilds; then pushgate's sources.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Every workspace member's manifest (cargo loads the whole workspace), with placeholder
# sources, so that the dependencies compile before the real code is copied in.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/
COPY test-support/Cargo.toml test-support/
COPY bench/loadgen/Cargo.toml bench/loadgen/
RUN mkdir -p src actors/src test-support/src bench/loadgen/src \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > bench/loadgen/src/main.rs \
 && touch src/lib.rs actors/src/lib.rs test-support/src/lib.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo fetch --locked \
 && cargo build --release --locked --bin pushgate
# The real sources; touched, so that cargo rebuilds what the placeholders stood for even when
# the copied files are older than them.
COPY src src
COPY actors actors
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    touch src/main.rs src/lib.rs actors/src/lib.rs \
 && cargo build --release --locked --bin pushgate

# Runtime stage: a slim image running as an unprivileged user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin pushgate
WORKDIR /app
COPY --from=build /src/target/release/pushgate /usr/local/bin/pushgate
COPY config config
USER pushgate
# Inside a container: listen on every interface, and the broker is another container
# (compose service or Kubernetes Service `rabbitmq`), never 127.0.0.1. No RUST_LOG: the
# built-in filter keeps the noisy dependencies (actix's tracing spans, lapin) at warn.
ENV HOST=0.0.0.0 \
    PORT=30006 \
    RABBITMQ_URL=amqp://guest:guest@rabbitmq:5672/%2f
EXPOSE 30006
# No HEALTHCHECK (the image has no curl): probe GET /health (liveness) and GET /ready
# (readiness) from the orchestrator. On SIGTERM /ready turns 503, clients are served for
# SHUTDOWN_DRAIN_MS (5 s), then closed: give the container a stop timeout above that
# (`docker stop -t 15`, compose `stop_grace_period: 15s`, Kubernetes'
# terminationGracePeriodSeconds defaults to 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pushgate"]
