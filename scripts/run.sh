#!/usr/bin/env bash
# Runs firstcome locally: installs/starts MariaDB and Redis (scripts/services.sh), then the
# service in release mode with its embedded Kafka broker. Swagger UI: http://127.0.0.1:8080/docs
# Any variable of docs/configuration.md can be set in the environment, e.g.
#   ADMIN_TOKEN=$(openssl rand -hex 32) scripts/run.sh   (unset: one is generated and printed to stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
# A load test from this machine (k6, README "Benchmarks") is one client address: lift the
# per-client connection cap (docs/design.md §17) for it, unless one is set.
export HTTP_MAX_CONNECTIONS_PER_CLIENT=${HTTP_MAX_CONNECTIONS_PER_CLIENT:-1000000}
exec cargo run --release --locked --bin firstcome -- serve
