#!/usr/bin/env python3
"""The tail of a bucketed sale (docs/design.md §21, "First come, first served to the last unit").
Run it through scripts/bench-tail.sh (it starts MariaDB and Redis and builds the release binary).

Two instances of `firstcome serve` on one database and one Redis (the second on PORT + 1). Each
run opens a campaign of STOCK units in BUCKETS buckets and sends USERS joins, every user distinct,
CONCURRENCY of them in flight at a time, alternately to each instance, and records when each was
sent and answered (one monotonic clock). Then it reads from MySQL when the first bucket ran dry
(its first refill: the deal is no transfer) and when the last unit committed.

Per run: wins (must be STOCK), the other answers by code, the tail (first dry bucket -> last unit
committed; and from the first steal, when a dry bucket found the pool empty), the first SOLD_OUT
answered and the last winning join sent (ms after the burst's
start), the SOLD_OUTs answered before a join that began later won (must be 0: §21), and the
SOLD_OUTs' and the wins' latencies (p50, p99). Then the range over runs. A markdown table.
"""
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

ENV = os.environ
RUNS = int(ENV.get("RUNS", "3"))
STOCK = int(ENV.get("STOCK", "1000"))
BUCKETS = int(ENV.get("BUCKETS", "64"))
USERS = int(ENV.get("USERS", "5000"))
CONCURRENCY = int(ENV.get("CONCURRENCY", "100"))
PORT = int(ENV.get("PORT", "8080"))
DB = ENV.get("BENCH_DB", "firstcome_tail")
BIN = ENV["FIRSTCOME_BIN"]
TOKEN = ENV["ADMIN_TOKEN"]
RESULTS = ENV.get("RESULTS_DIR", "k6/results")


def log(msg):
    print(f"[bench-tail] {msg}", file=sys.stderr, flush=True)


def sql(query):
    cmd = ([] if os.geteuid() == 0 else ["sudo"]) + ["mariadb", "-N", "-B", DB, "-e", query]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def start(n, port):
    env = dict(ENV)
    env.update({
        "DATABASE_URL": f"mysql://firstcome:firstcome@127.0.0.1:{ENV.get('DB_PORT', '3306')}/{DB}",
        "HTTP_ADDR": f"127.0.0.1:{port}",
        "RUST_LOG": ENV.get("RUST_LOG", "warn"),
        "REDIS_KEY_PREFIX": f"firstcome-bench-tail-{os.getpid()}:",
        "HTTP_MAX_CONNECTIONS_PER_CLIENT": "1000000",
        "MIGRATE_ON_START": "true" if n == 0 else "false",
    })
    logf = open(os.path.join(RESULTS, f"tail-service-{n}.log"), "w")
    proc = subprocess.Popen([BIN, "serve"], env=env, stdout=logf, stderr=subprocess.STDOUT)
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"instance {n} exited during start-up (see {logf.name})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/ready")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"instance {n} was not ready within 60 s")


def call(conn, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, (json.loads(data) if data else {})


def open_campaign():
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    spec = {"name": "bench-tail", "totalStock": STOCK, "perUserLimit": 1}
    if BUCKETS > 1:
        spec["buckets"] = BUCKETS
    status, body = call(conn, "POST", "/api/v1/campaigns", spec, TOKEN)
    if status != 201:
        sys.exit(f"campaign creation answered {status}: {body}")
    return body["id"]


local = threading.local()


def join(campaign, user, t0):
    port = PORT + (user % 2)
    if getattr(local, "conns", None) is None:
        local.conns = {}
    conn = local.conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    local.conns[port] = conn
    sent = time.monotonic() - t0
    try:
        status, body = call(conn, "POST", f"/api/v1/campaigns/{campaign}/participations",
                            {"userId": user, "quantity": 1})
        code = "WON" if status == 201 else body.get("code", str(status))
    except OSError as e:
        local.conns.pop(port, None)
        code = f"transport: {e.__class__.__name__}"
    return sent, time.monotonic() - t0, code


def ms_after(wall, expr):
    row = sql(f"SELECT CAST(TIMESTAMPDIFF(MICROSECOND, '{wall}', ({expr})) / 1000 AS SIGNED)")
    return int(row[0][0]) if row and row[0][0] != "NULL" else None


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def one_run(n):
    campaign = open_campaign()
    wall = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    t0 = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(pool.map(lambda u: join(campaign, u, t0), range(1, USERS + 1)))
    codes = {}
    for _, _, code in answers:
        codes[code] = codes.get(code, 0) + 1
    wins = [a for a in answers if a[2] == "WON"]
    sold_out = [a for a in answers if a[2] == "SOLD_OUT"]
    last_win_sent = max((a[0] for a in wins), default=0.0)
    first_sold_out = min((a[1] for a in sold_out), default=float("nan"))
    early = sum(1 for a in sold_out if a[1] < last_win_sent)
    dry = ms_after(wall, f"SELECT MIN(created_at) FROM bucket_transfer WHERE campaign_id = {campaign}")
    steal = ms_after(wall, f"SELECT MIN(created_at) FROM bucket_transfer WHERE campaign_id = {campaign} "
                           "AND from_bucket IS NOT NULL")
    last = ms_after(wall, f"SELECT MAX(created_at) FROM participation WHERE campaign_id = {campaign}")
    row = {
        "run": n, "wins": len(wins), "others": {k: v for k, v in codes.items() if k != "WON"},
        "tail_ms": (last - dry) if dry is not None and last is not None else None,
        "steal_tail_ms": (last - steal) if steal is not None and last is not None else None,
        "first_sold_out_ms": first_sold_out * 1000, "last_win_sent_ms": last_win_sent * 1000,
        "early_sold_outs": early,
        "sold_out_p50_ms": pct([a[1] - a[0] for a in sold_out], 50) * 1000,
        "sold_out_p99_ms": pct([a[1] - a[0] for a in sold_out], 99) * 1000,
        "win_p99_ms": pct([a[1] - a[0] for a in wins], 99) * 1000,
    }
    log(f"run {n}: {row}")
    return row


def main():
    os.makedirs(RESULTS, exist_ok=True)
    sql_root = ([] if os.geteuid() == 0 else ["sudo"]) + ["mariadb", "-e"]
    subprocess.run(sql_root + [f"DROP DATABASE IF EXISTS `{DB}`; CREATE DATABASE `{DB}`"], check=True)
    first = start(0, PORT)
    procs = [first, start(1, PORT + 1)]
    rows = []
    try:
        for n in range(1, RUNS + 1):
            rows.append(one_run(n))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    report(rows)
    if any(r["wins"] != STOCK or r["early_sold_outs"] for r in rows):
        sys.exit("a run sold other than the stock, or answered a SOLD_OUT before a later join won")


def report(rows):
    lanes = ENV.get("GROUP_COMMIT_BUCKET_LANES", "1 (default)")
    print(f"\n{RUNS} runs; {STOCK} units in {BUCKETS} buckets; {USERS} distinct users, "
          f"{CONCURRENCY} in flight over two instances; GROUP_COMMIT_BUCKET_LANES={lanes}\n")
    cols = [("wins", "wins", "{}"), ("tail ms", "tail_ms", "{}"),
            ("first steal → last unit ms", "steal_tail_ms", "{}"),
            ("first SOLD_OUT ms", "first_sold_out_ms", "{:.0f}"),
            ("last win sent ms", "last_win_sent_ms", "{:.0f}"),
            ("SOLD_OUT before a later win", "early_sold_outs", "{}"),
            ("SOLD_OUT p50 ms", "sold_out_p50_ms", "{:.0f}"), ("SOLD_OUT p99 ms", "sold_out_p99_ms", "{:.0f}"),
            ("win p99 ms", "win_p99_ms", "{:.0f}")]
    print("| run | " + " | ".join(c[0] for c in cols) + " | other answers |")
    print("|---|" + "---:|" * len(cols) + "---|")
    for r in rows:
        cells = [f.format(r[k]) if r[k] is not None else "-" for _, k, f in cols]
        others = ", ".join(f"{k} {v}" for k, v in sorted(r["others"].items()))
        print(f"| {r['run']} | " + " | ".join(cells) + f" | {others} |")
    tails = [r["tail_ms"] for r in rows if r["tail_ms"] is not None]
    if tails:
        print(f"\ntail: {min(tails)}–{max(tails)} ms over {len(tails)} runs")


if __name__ == "__main__":
    main()
