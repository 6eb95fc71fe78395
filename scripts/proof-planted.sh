#!/usr/bin/env bash
# The proof's checker against a service known to be wrong (docs/design.md §18): a short run of
# scripts/proof.sh with FIRSTCOME_PLANTED_BUG=return-twice (a return's units go back to MySQL
# twice; src/startup/seam.rs). The run must exit 1 with oversells in its report; a checker
# that passes it is broken. Part of scripts/test.sh; its output is in target/proof-planted.log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LOG=target/proof-planted.log
mkdir -p target

set +e
PROOF_DURATION=${PROOF_DURATION:-30} ./scripts/proof.sh --planted-bug return-twice --seed 1 \
  --settle-timeout 20 --out target/proof/planted >"$LOG" 2>&1
status=$?
set -e
oversells=$(awk '$1 == "oversell" { print $2 }' "$LOG" | tail -1)
if [ "$status" -eq 1 ] && [ "${oversells:-0}" -gt 0 ]; then
  echo "[proof-planted] ok: the checker caught the planted bug ($oversells oversells; exit 1)"
  exit 0
fi
tail -60 "$LOG"
echo "[proof-planted] FAILED: the run exited $status with ${oversells:-no} oversells; a run against a planted bug must exit 1 with oversells (log: $LOG)"
exit 1
