#!/usr/bin/env bash
# What a bucketed batch's guarded decrement costs MariaDB, by the statement's shape (docs/design.md
# §21, docs/benchmarks.md "Buckets"): one row, a plain multi-row UPDATE, the service's
# `UPDATE … CASE bucket …`, a JSON_TABLE join, and each statement's prepare, each run LOOPS times
# inside MariaDB (no client, no network). See scripts/bench_bucket_statement.py.
#
#   scripts/bench-bucket-statement.sh                 40 of 64 buckets, 2,000 loops, 2 rounds
#   ROWS=64 BUCKETS=1024 scripts/bench-bucket-statement.sh
#
# Settings: BUCKETS (64), ROWS (40: the buckets a batch holds), LOOPS (2000), ROUNDS (2),
# BENCH_DB (firstcome_statement, dropped at the end). Uses the MariaDB of scripts/services.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=bench-statement
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_db firstcome_statement
exec python3 "$ROOT/scripts/bench_bucket_statement.py"
