#!/usr/bin/env bash
# The tail of a bucketed sale (docs/design.md §21): two instances of the release build on one
# MariaDB and one Redis, a campaign of STOCK units in BUCKETS buckets, USERS distinct users with
# CONCURRENCY joins in flight, RUNS times. Prints per run the tail (first dry bucket -> last unit
# committed), the SOLD_OUTs answered before a join that began later won (0 by the contract), and
# the answers' latencies; see scripts/bench_tail.py.
#
#   scripts/bench-tail.sh                                   3 runs: 1,000 units, 64 buckets, 5,000 users, 100 in flight
#   GROUP_COMMIT_BUCKET_LANES=4 RUNS=5 scripts/bench-tail.sh
#
# Settings: RUNS (3), STOCK (1000), BUCKETS (64), USERS (5000), CONCURRENCY (100), PORT (8080; the
# second instance PORT + 1), BENCH_DB (firstcome_tail, dropped and re-created), FIRSTCOME_BIN
# (target/release/firstcome, built when missing), RESULTS_DIR (k6/results), and any of the
# service's variables (they reach both instances). Uses the MariaDB and Redis of scripts/services.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=bench-tail
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_setup firstcome_tail
export RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results}
port_free "${PORT:-8080}" "the first instance (PORT)"
port_free "$(( ${PORT:-8080} + 1 ))" "the second instance (PORT + 1)"
exec python3 "$ROOT/scripts/bench_tail.py"
