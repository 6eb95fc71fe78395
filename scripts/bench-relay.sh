#!/usr/bin/env bash
# Relay benchmark: drains BENCH_ROWS (100,000) pending outbox rows to the embedded Kafka broker,
# then measures commit→ack lag at a steady participation load; prints a table. Uses a throw-away
# database (test_bench_<uuid>) on the local MariaDB. Knobs: BENCH_ROWS, BENCH_KEYS, BENCH_RATE,
# BENCH_SECONDS and the service's RELAY_* / KAFKA_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
RUST_LOG=${RUST_LOG:-warn} exec cargo run --release --locked --example relay_bench
