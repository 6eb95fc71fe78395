# firstcome: multi-stage image.
#   docker build -t firstcome .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e REDIS_URL=... -e KAFKA_BOOTSTRAP_SERVERS=... firstcome
# Subcommands (`docker run --rm firstcome --help`): `serve` (default), `consume`, `migrate`, `openapi`,
# among others, e.g. `docker run --rm firstcome openapi`.

# ---- builder ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# rdkafka builds its bundled librdkafka with ./configure + make (no cmake); the `libz` feature
# links the system zlib, the `ssl` feature the system OpenSSL (found through pkg-config), which
# gives librdkafka TLS and SASL/SCRAM for a managed Kafka (security.protocol=SASL_SSL in
# KAFKA_PROPERTIES).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependency cache: build every dependency against stub crate roots first, so that editing the
# sources does not rebuild rdkafka and friends. Only the manifests and the lock file invalidate
# this layer.
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src migration/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs migration/src/lib.rs \
 && cargo build --release --locked --bin firstcome \
 && rm -rf src migration/src

COPY migration migration
COPY src src
COPY lua lua
COPY openapi openapi
# COPY keeps the files' original mtimes, which can be older than the stub build above; touch them
# so cargo rebuilds the two workspace crates instead of reusing the stub artifacts.
RUN find src migration/src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin firstcome \
 && strip target/release/firstcome

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: the system's CA roots, trusted by librdkafka (through OpenSSL's default paths)
# when KAFKA_PROPERTIES sets security.protocol=SSL or SASL_SSL, and by rediss:// without
# REDIS_TLS_CA_FILE (a private CA is a mounted PEM file: ssl.ca.location in KAFKA_PROPERTIES,
# REDIS_TLS_CA_FILE, ssl-ca in DATABASE_URL); curl for the container health check
# (docker-compose.yml probes /health/ready); zlib1g and libssl3 (libssl and libcrypto) are
# librdkafka's shared libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl zlib1g libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 firstcome \
 && useradd --system --uid 10001 --gid firstcome --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin firstcome

WORKDIR /app
COPY --from=builder /build/target/release/firstcome /usr/local/bin/firstcome
# The scripts are compiled into the binary (include_str!); this copy is for operators who want
# to read or load them by hand (redis-cli --eval).
COPY --from=builder /build/lua /app/lua

USER 10001:10001
# All interfaces of the container: the service is then in protected mode (docs/design.md §17)
# and starts only with USER_AUTH (jwt, or none said out loud) and ADMISSION_SECRET set, e.g.
#   docker run -e USER_AUTH=none -e ADMISSION_SECRET=$(openssl rand -hex 32) \
#     -e ADMIN_TOKEN=$(openssl rand -hex 32) -e DATABASE_URL=… -e REDIS_URL=… firstcome:local
ENV HTTP_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["firstcome"]
CMD ["serve"]
