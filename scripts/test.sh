#!/usr/bin/env bash
# The whole test suite, against real MariaDB and Redis (installed and started by
# scripts/services.sh) and librdkafka's mock cluster for Kafka. Extra arguments go to `cargo test`,
# e.g. `scripts/test.sh exactly_n` runs the tests whose names contain "exactly_n".
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/services.sh

# Each test makes its own database (test_<uuid>) and Redis key prefix (test:<uuid>:); clear the
# ones earlier runs left behind.
DB_USER=${DB_USER:-firstcome} DB_PASSWORD=${DB_PASSWORD:-firstcome}
mariadb -h 127.0.0.1 -u "$DB_USER" -p"$DB_PASSWORD" -N -e \
  "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'test\\_%'" |
  while read -r db; do mariadb -h 127.0.0.1 -u "$DB_USER" -p"$DB_PASSWORD" -e "DROP DATABASE \`$db\`"; done
redis-cli --scan --pattern 'test:*' | xargs -r -n 500 redis-cli del >/dev/null

export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
exec cargo test --workspace --locked "$@"
