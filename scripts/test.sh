#!/usr/bin/env bash
# The whole test suite, against real MariaDB and Redis (installed and started by
# scripts/services.sh), a three-master Redis Cluster on loopback (scripts/redis-cluster.sh) and
# librdkafka's mock cluster for Kafka. Extra arguments go to `cargo test`,
# e.g. `scripts/test.sh exactly_n` runs the tests whose names contain "exactly_n".
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/services.sh
./scripts/redis-cluster.sh

# Each test makes its own database (test_<uuid>) and Redis key prefix (test:<uuid>:). Clear what
# earlier runs left behind, but only what is more than an hour old: the uuid is a UUIDv7, whose
# first 12 hex digits are its creation time in milliseconds, so a run going on at the same time
# (another terminal, CI) keeps its databases.
DB_USER=${DB_USER:-firstcome} DB_PASSWORD=${DB_PASSWORD:-firstcome}
cutoff_ms=$(( $(date +%s) * 1000 - 3600 * 1000 ))
stale() { # stale <name containing a 32-hex-digit UUIDv7>
  [[ $1 =~ ([0-9a-f]{32}) ]] || return 1
  [ $(( 16#${BASH_REMATCH[1]:0:12} )) -lt "$cutoff_ms" ]
}
mariadb -h 127.0.0.1 -u "$DB_USER" -p"$DB_PASSWORD" -N -e \
  "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'test\\_%'" |
  while read -r db; do
    if stale "$db"; then mariadb -h 127.0.0.1 -u "$DB_USER" -p"$DB_PASSWORD" -e "DROP DATABASE \`$db\`"; fi
  done
redis-cli --scan --pattern 'test:*' |
  while read -r key; do if stale "$key"; then echo "$key"; fi; done |
  xargs -r -n 500 redis-cli del >/dev/null

export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
exec cargo test --workspace --locked "$@"
