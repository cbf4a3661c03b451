# syntax=docker/dockerfile:1
# Multi-stage build: cargo-chef caches dependency builds in their own layer,
# so a source change rebuilds only the crate itself.

FROM rust:1-slim-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin ledger-gateway

FROM debian:bookworm-slim AS runtime
# curl only for the HEALTHCHECK; ca-certificates for HTTPS upstreams.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home gateway
COPY --from=builder /app/target/release/ledger-gateway /usr/local/bin/ledger-gateway
USER gateway
ENV LEDGER_GATEWAY__SERVER__LISTEN=0.0.0.0:8080 \
    LEDGER_GATEWAY__TELEMETRY__LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["ledger-gateway"]
CMD ["serve", "--demo"]
