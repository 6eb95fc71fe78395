#!/usr/bin/env bash
# The whole test suite. It installs what is missing (MariaDB, Redis, OpenSSL's headers: through
# scripts/services.sh install), then runs `cargo test` against servers of its own, started for the
# run and stopped afterwards (scripts/test-services.sh: a private MariaDB on 127.0.0.1:23306, a
# Redis on 26379 and a three-master Redis Cluster on 27001-27003, data in target/test-services).
# The machine's own MariaDB and Redis, if any, are never touched. Kafka is librdkafka's mock
# cluster, inside the tests. Extra arguments go to `cargo test`, e.g. `scripts/test.sh exactly_n`
# runs the tests whose names contain "exactly_n".
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/services.sh install
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
exec ./scripts/test-services.sh run cargo test --workspace --locked "$@"
