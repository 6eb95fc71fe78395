#!/usr/bin/env bash
# Consumer benchmark: the stats consumer's throughput from a 100,000-event backlog (one hot
# campaign; 100 campaigns through 1 and 8 partitions, one and two processes), commit→applied
# latency at 1,000 wins/s, and the daily stats query (aggregated vs raw) on 1,000,000
# participations; prints a table (min / median / max of BENCH_RUNS runs). Uses a throw-away
# database (test_bench_<uuid>) on the local MariaDB. Knobs: BENCH_EVENTS, BENCH_CAMPAIGNS,
# BENCH_RUNS, BENCH_RATE, BENCH_SECONDS, BENCH_DAILY_ROWS and the service's CONSUMER_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
RUST_LOG=${RUST_LOG:-warn} exec cargo run --release --locked --example consumer_bench
