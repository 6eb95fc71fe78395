#!/usr/bin/env bash
# The short proof run of the test suite (docs/design.md §18): scripts/proof.sh against the
# service as built, two instances at the service's production defaults (no timeout variable
# set), every fault kind at least once in 75 s (seed 13; the MySQL failover lands mid-burst),
# a waiting-room campaign and a 16-bucket campaign among the open ones, a group of three
# campaigns joined singly and bought in carts (design §22), the burst (1,000 units in 64
# buckets for 5,000 users, 128 joins in flight over both instances with 4 group commit lanes
# each: the bucketed tail, design §21), then the
# checker, which must find no anomaly and no join of a failover's burst left unanswered past
# the request deadline. About 90 s. Part of scripts/test.sh; its output is in
# target/proof-short.log, its history and final state in target/proof/short (re-check them
# with the command the log's last line prints).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LOG=target/proof-short.log
mkdir -p target

set +e
PROOF_DURATION=${PROOF_DURATION:-75} ./scripts/proof.sh --seed "${PROOF_SEED:-13}" \
  --out target/proof/short >"$LOG" 2>&1
status=$?
set -e
kinds=$(awk -F': ' '/^faults injected:/ { print $2 }' "$LOG" | tr ',' '\n' | grep -c . || true)
if [ "$status" -eq 0 ] && [ "${kinds:-0}" -ge 9 ]; then
  echo "[proof-short] ok: no anomalies; faults injected: $(awk -F': ' '/^faults injected:/ { print $2 }' "$LOG")"
  grep '^mysql failover' "$LOG" | sed 's/^/[proof-short] /' || true
  exit 0
fi
tail -80 "$LOG"
echo "[proof-short] FAILED: the run exited $status with ${kinds:-0} of 9 fault kinds injected (log: $LOG)"
exit 1
