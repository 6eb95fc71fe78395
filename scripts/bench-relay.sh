#!/usr/bin/env bash
# Relay benchmark: drains BENCH_ROWS (100,000) pending outbox rows to the embedded Kafka broker,
# over one key and over BENCH_KEYS, BENCH_RUNS times, each beside its limit (the same rows drained
# by MySQL alone with the relay's statements), then measures commit→ack lag at a steady
# participation load; prints a table. Uses a throw-away database (test_bench_<uuid>) on the local
# MariaDB. Knobs: BENCH_ROWS, BENCH_KEYS, BENCH_RUNS, BENCH_RATE, BENCH_SECONDS,
# BENCH_PHASES (steady,drain), BENCH_VERBOSE and the service's RELAY_* / KAFKA_* variables.
#
# PROFILE=1 also profiles the run (it slows it: its rates are not the benchmark's), into
# PROFILE_DIR (target/profile-relay):
#   - every statement timed by MariaDB's slow log (long_query_time = 0, set and reset here as
#     root over the unix socket), summed by statement shape: statements.md;
#   - CPU per process, sampled by `top` every 2 s: top.txt;
#   - with PERF=1, a system-wide `perf record -g` of 10 s once the first drain starts: perf.data
#     (`perf report -i … --sort comm,dso,sym`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
cargo build --release --locked --example relay_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/relay_bench
export RUST_LOG=${RUST_LOG:-warn}
if [ "${PROFILE:-0}" != 1 ]; then
  exec "$bin"
fi
dir=${PROFILE_DIR:-target/profile-relay}
mkdir -p "$dir"
slow=/tmp/firstcome-relay-slow-$$.log
mysql -uroot -e "SET GLOBAL slow_query_log_file = '$slow'; SET GLOBAL log_slow_verbosity = ''; \
  SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = 1"
trap 'mysql -uroot -e "SET GLOBAL slow_query_log = 0; SET GLOBAL long_query_time = 10"' EXIT
top -b -d 2 > "$dir/top.txt" &
top_pid=$!
if [ "${PERF:-0}" = 1 ]; then
  ( sleep "${PERF_AFTER:-20}"; perf record -a -g -F 499 -o "$dir/perf.data" -- sleep 10 ) >/dev/null 2>&1 &
fi
"$bin" | tee "$dir/table.md"
kill "$top_pid" 2>/dev/null || true
scripts/mysql-statements.py "$slow" > "$dir/statements.md"
rm -f "$slow"
echo "Profile in $dir: statements.md (MariaDB time by statement), top.txt, table.md"
