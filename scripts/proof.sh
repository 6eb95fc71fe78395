#!/usr/bin/env bash
# A short proof run (issue 38, docs/design.md §18): two instances of the service under a seeded
# workload and every fault kind, then the checker on the recorded history and final state.
#
#   scripts/proof.sh [run options...]     e.g. scripts/proof.sh --seed 7 --duration 120
#   scripts/proof.sh --planted-bug return-twice     a service with a bug planted (startup::seam):
#                                                   the run must exit 1 with anomalies
#   scripts/proof.sh --fast-timeouts                the instances on the short timeouts of earlier
#                                                   runs (2 s requests, 3 s reservations) instead of
#                                                   the service's production defaults
#
# The instances run at the service's production defaults (no timeout variable set; the checker
# is told the bounds read from `firstcome serve --help`), since that is what the contract's
# bounds are promised for (docs/design.md §18.1).
#
# Builds the service and firstcome-proof in the debug profile: the test suite builds the same
# debug artefacts (dependencies at opt-level 1), so this usually compiles only what changed,
# where a release build recompiles every dependency (many minutes on two cores). The harness
# runs the service at a modest rate, so debug speed does not limit it.
#
# MySQL is the test suite's (scripts/test-services.sh): used when TEST_DATABASE_URL is set or
# its port answers, started with `scripts/test-services.sh start` otherwise. This script never
# stops them (other test runs may use them), and never uses `test-services.sh run` (it takes
# the suite's lock). Redis and the Kafka broker are the run's own, started and stopped by the
# harness. Exit status: the run's (0 clean, 1 anomalies, 2 the run failed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DB_PORT=${TEST_DB_PORT:-23306}

say() { printf 'proof.sh: %s\n' "$*" >&2; }

command -v redis-server >/dev/null 2>&1 ||
  { say "redis-server is missing (scripts/services.sh install installs it)"; exit 2; }

say "building the service and firstcome-proof (debug)"
# test-hooks: what `cargo test` builds too (so nothing recompiles), and what --planted-bug needs;
# its hooks are inert unless a test or FIRSTCOME_PLANTED_BUG arms them.
cargo build --bin firstcome --features test-hooks
cargo build -p firstcome-proof

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$DB_PORT") 2>/dev/null; then
    export TEST_DATABASE_URL="mysql://firstcome:firstcome@127.0.0.1:$DB_PORT"
  else
    say "starting the test services (scripts/test-services.sh start; left running)"
    eval "$(scripts/test-services.sh start | grep '^export ')"
  fi
fi

exec "$TARGET/debug/firstcome-proof" run \
  --service-bin "$TARGET/debug/firstcome" \
  --duration "${PROOF_DURATION:-75}" \
  "$@"
