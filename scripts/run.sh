#!/usr/bin/env bash
# Runs firstcome locally: installs/starts MariaDB and Redis (scripts/services.sh), then the
# service in release mode with its embedded Kafka broker. Swagger UI: http://127.0.0.1:8080/docs
# Any variable of README "Configuration" can be set in the environment, e.g.
#   ADMIN_TOKEN=$(openssl rand -hex 24) scripts/run.sh   (unset: one is generated and printed to stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
exec cargo run --release --locked --bin firstcome -- serve
