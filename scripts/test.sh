#!/usr/bin/env bash
# The whole test suite. It installs what is missing (MariaDB, Redis, OpenSSL's headers, Python and
# npm: through scripts/services.sh install), then, against servers of its own started for the run
# and stopped afterwards (scripts/test-services.sh: a private MariaDB on 127.0.0.1:23306, a Redis
# on 26379 and a three-master Redis Cluster on 22001-22003, data in target/test-services), runs
#   1. `cargo test` (unit and integration tests; Kafka is librdkafka's mock cluster, inside them);
#   2. scripts/api-check.sh (the OpenAPI and AsyncAPI documents checked by standard validators, a
#      generated client driven through a short scenario against the running service);
#   3. scripts/nginx-check.sh (Debian's nginx in front of the service, configured as the README's
#      example, on loopback: per-IP limits per real client, a client's own X-Forwarded-For
#      ignored, no call failing over pooled upstream connections idle up to the deadlines);
#   4. scripts/console-check.sh (the live console in Debian's Chromium during a k6 burst; its
#      screenshots go to target/console-check/, docs/console.png is one of them, committed);
#      then scripts/bot-check-page.sh (examples/waiting-room.html in the same Chromium solves a
#      campaign's proof-of-work bot check, queues and wins), then scripts/drop-check.sh (the README's "Running a drop" block run as written against a
#      fresh service, each printed line checked against the README's `#> ` lines);
#   5. the proof run against a service with a bug planted (scripts/proof.sh --planted-bug
#      return-twice, docs/design.md §18): two instances, every fault kind, then the checker,
#      which must exit 1 and find the oversell. A checker is believed once it has failed a
#      service known to be wrong;
#   6. the short proof run against the service as built (scripts/proof-short.sh: 75 s, seed 13,
#      every fault kind, a bucketed burst selling out), which must find no anomaly.
# The machine's own MariaDB and Redis, if any, are never touched. Extra arguments go to
# `cargo test` and skip steps 2 to 6, e.g. `scripts/test.sh exactly_n` runs the tests whose names
# contain "exactly_n".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--with-test-services" ]; then
  ./scripts/services.sh install
  exec ./scripts/test-services.sh run "$0" --with-test-services "$@"
fi
shift
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
# A failing test's message comes last in cargo's output; a backtrace after it pushes it out of a
# log's tail (CI shows the tail). TEST_BACKTRACE=1 brings the backtraces back.
export RUST_BACKTRACE=${TEST_BACKTRACE:-0}
cargo test --workspace --locked "$@"
if [ $# -eq 0 ]; then
  ./scripts/api-check.sh
  ./scripts/nginx-check.sh
  ./scripts/console-check.sh target/console-check/console.png
  ./scripts/bot-check-page.sh
  ./scripts/drop-check.sh
  ./scripts/proof-planted.sh
  ./scripts/proof-short.sh
fi
