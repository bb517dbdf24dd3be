# syntax=docker/dockerfile:1
# Build stage: compile a release binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors actors
COPY src src
# A workspace member: cargo needs it to load the workspace (only pushgate is built).
COPY bench/loadgen bench/loadgen
RUN cargo build --release --locked --bin pushgate

# Runtime stage: a slim image running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin pushgate
WORKDIR /app
COPY --from=build /src/target/release/pushgate /usr/local/bin/pushgate
COPY config config
USER pushgate
ENV PORT=30006 HOST=0.0.0.0 RUST_LOG=info
EXPOSE 30006
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/health" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pushgate"]
