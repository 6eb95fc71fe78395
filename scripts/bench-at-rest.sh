#!/usr/bin/env bash
# A big bucketed campaign's creation time and its cost at rest (docs/design.md §21): CAMPAIGNS
# campaigns of BUCKETS buckets created through the API, then IDLE seconds with nobody joining.
# Prints each creation's time and, at rest, MariaDB's statements, Redis's commands and the
# service's CPU per second. See scripts/bench_at_rest.py.
#
#   scripts/bench-at-rest.sh                          3 runs: 4 campaigns of 1,024 buckets, 20 s at rest
#   FIRSTCOME_BIN=/tmp/old RUNS=1 scripts/bench-at-rest.sh
#
# Settings: RUNS (3), CAMPAIGNS (4), BUCKETS (1024), IDLE (20), PORT (8080), BENCH_DB
# (firstcome_rest, dropped and re-created each run), FIRSTCOME_BIN (target/release/firstcome,
# built when missing), and any of the service's variables. Uses the MariaDB and Redis of
# scripts/services.sh, whose counters must not be shared with another load.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=bench-at-rest
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_setup firstcome_rest
port_free "${PORT:-8080}" "the service (PORT)"
exec python3 "$ROOT/scripts/bench_at_rest.py"
