#!/usr/bin/env bash
# The drop scenario (docs/design.md §22, k6/drop.js): 10 sizes of a sneaker in one group with a
# limit of one pair per customer, each behind a waiting room with a waitlist; 20,000 users each
# queue for two sizes; 30 % of the winners leave their hold unpaid, so its unit comes back and is
# offered to the next waitlisted user. The service, MySQL and Redis are set up as
# scripts/bench-waiting-room.sh does (it runs this scenario); the report (scripts/drop_report.py)
# reads MySQL: every unit sold, none to a user over the limit, and the time from each return (a
# hold's expiry) to the next waitlisted user's win of its campaign.
#
#   scripts/bench-drop.sh                               # 20,000 users, 10 sizes of 100 units
#   USERS=5000 STOCK_PER_SIZE=50 scripts/bench-drop.sh
#
# Settings: USERS (20000), SIZES (10), STOCK_PER_SIZE (100), ADMISSION_RATE (200 a size), HOLD_SECONDS
# (20), OFFER_SECONDS (15), PAY_PERCENT (70), VUS (500), and bench-waiting-room.sh's own
# (FIRSTCOME_BIN, RESULTS_DIR: k6/results/drop, SKIP_SERVICES, BENCH_DB).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SCENARIO=drop
export USERS=${USERS:-20000} ADMISSION_RATE=${ADMISSION_RATE:-200}
export RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results/drop}
exec "$ROOT/scripts/bench-waiting-room.sh"
