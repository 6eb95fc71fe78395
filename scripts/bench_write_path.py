#!/usr/bin/env python3
"""The write path's mechanism on two cores (docs/design.md §10 "Many cores", §21 "Scale that holds"):
what one campaign's wins cost MariaDB as it spreads over buckets and instances, from MariaDB's own
counters. On two shared cores contention hides in the rates, so the mechanism is measured instead:
row-lock waits and their time per 1,000 wins (two writers waiting on one row), wins per commit
and per join transaction (how big the batches stay; a transaction's wins share their
`created_at`), statements and rows written per win. Run it through
scripts/bench-write-path.sh (it starts the services, builds the release binary and installs k6).

Each phase: a fresh database, INSTANCES instances of `firstcome serve` as they run by default (each
with its relay, both consumers and its embedded broker), one campaign of STOCK units in BUCKETS
buckets created through the first, VUS looping VUs for DURATION, every request a distinct user who
wins, the VUs spread over the instances (k6/flash-sale.js with BASE_URLS); then a wait until the
outbox is drained and every instance's consumers applied what its relay published. MariaDB's
counters (SHOW GLOBAL STATUS) are taken before the load and once everything is applied.

WAITS=1 also samples InnoDB's lock waits ten times a second during the load and prints the
waiting statements by shape (which rows the writers wait on); the sampling costs MariaDB some CPU.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import bench_common as common
from bench_common import get, sql

ROOT = Path(__file__).resolve().parent.parent
ENV = os.environ
RUNS = int(ENV.get("RUNS", "1"))
PHASES = [tuple(int(x) for x in p.split("x")) for p in ENV.get("PHASES", "1x1,64x1,1x2,64x2").split(",")]
VUS = int(ENV.get("VUS", "256"))
DURATION = ENV.get("DURATION", "15s")
STOCK = int(ENV.get("STOCK", "10000000"))
PORT = int(ENV.get("PORT", "8080"))
DB = ENV.get("BENCH_DB", "firstcome_write")
BIN = ENV["FIRSTCOME_BIN"]
K6 = ENV["K6"]
RESULTS = Path(ENV.get("RESULTS_DIR", ROOT / "k6" / "results"))
WAITS = ENV.get("WAITS", "0") == "1"
# Rows written: the handler's writes, updates and deletes (MariaDB has no Innodb_rows_* counters;
# the Handler_tmp_* ones, temporary tables, are apart).
COUNTERS = ["Com_commit", "Questions", "Innodb_row_lock_waits", "Innodb_row_lock_time",
            "Handler_write", "Handler_update", "Handler_delete"]


def log(msg):
    print(f"[bench-write-path] {msg}", file=sys.stderr, flush=True)


def start(phase, n):
    env = dict(ENV)
    env.update({
        "DATABASE_URL": f"mysql://firstcome:firstcome@127.0.0.1:{ENV.get('DB_PORT', '3306')}/{DB}",
        "HTTP_ADDR": f"127.0.0.1:{PORT + n}",
        "RUST_LOG": ENV.get("RUST_LOG", "warn"),
        "REDIS_KEY_PREFIX": f"firstcome-bench-write-{os.getpid()}-{phase}:",
        "HTTP_MAX_CONNECTIONS_PER_CLIENT": "1000000",
        "MIGRATE_ON_START": "true" if n == 0 else "false",
    })
    return common.start(BIN, env, PORT + n, RESULTS / f"write-path-{phase}-service-{n}.log", f"instance {n}")


def applied(ports, consumer):
    total = 0.0
    for port in ports:
        for line in get(port, "/metrics").splitlines():
            if line.startswith("firstcome_consumer_events_total{") and f'consumer="{consumer}"' in line \
                    and 'result="applied"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def wait_applied(ports, wins, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(sql("SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'", DB)[0][0]) == 0 \
                and applied(ports, "stats") >= wins and applied(ports, "rewards") >= wins:
            return
        time.sleep(0.2)
    sys.exit(f"not everything was published and applied within {timeout:.0f} s")


class WaitSampler(threading.Thread):
    """InnoDB's lock waits, ten samples a second: the waiting statement's shape, counted."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.shapes = Counter()

    def run(self):
        query = ("SELECT r.trx_query FROM information_schema.innodb_lock_waits w "
                 "JOIN information_schema.innodb_trx r ON r.trx_id = w.requesting_trx_id")
        while not self.stop.wait(0.1):
            for (q,) in sql(query):
                self.shapes[re.sub(r"\s+", " ", re.sub(r"\b\d+\b|'[^']*'", "?", q))[:140]] += 1


def one_phase(run, buckets, instances):
    phase = f"{run}-{buckets}x{instances}"
    sql(f"DROP DATABASE IF EXISTS `{DB}`; CREATE DATABASE `{DB}`")
    procs = []
    try:
        for n in range(instances):
            procs.append(start(phase, n))
        ports = [PORT + n for n in range(instances)]
        summary = RESULTS / f"write-path-{phase}-k6.json"
        sampler = WaitSampler() if WAITS else None
        log(f"run {run}: {buckets} bucket(s), {instances} instance(s), {VUS} VUs for {DURATION}")
        before = common.status(COUNTERS)
        if sampler:
            sampler.start()
        k6 = subprocess.run(
            [K6, "run", "--quiet", "--no-color", "-e", f"BASE_URL=http://127.0.0.1:{PORT}",
             "-e", "BASE_URLS=" + ",".join(f"http://127.0.0.1:{p}" for p in ports),
             "-e", f"VUS={VUS}", "-e", f"DURATION={DURATION}", "-e", f"STOCK={STOCK}",
             "-e", "USER_IDS=distinct", "-e", f"BUCKETS={buckets}", "-e", "PATH_KIND=outbox",
             "-e", f"ADMIN_TOKEN={ENV['ADMIN_TOKEN']}", "-e", f"SUMMARY_FILE={summary}",
             str(ROOT / "k6" / "flash-sale.js")],
            capture_output=True, text=True)
        if sampler:
            sampler.stop.set()
            sampler.join()
        if k6.returncode not in (0, 99):
            sys.exit(f"k6 failed ({k6.returncode}): {k6.stderr[-2000:]}")
        wins = int(sql("SELECT COUNT(*) FROM participation", DB)[0][0])
        # A join transaction's wins share their acceptedAt (`created_at`), so the distinct
        # values count the join transactions, whatever the relay and the consumers commit.
        joins = int(sql("SELECT COUNT(DISTINCT campaign_id, created_at) FROM participation", DB)[0][0])
        wait_applied(ports, wins)
        after = common.status(COUNTERS)
    finally:
        common.stop(procs)
    d = {k: after[k] - before[k] for k in COUNTERS}
    seconds = float(re.sub(r"[^0-9.]", "", DURATION)) * (60 if DURATION.endswith("m") else 1)
    k = json.loads(summary.read_text()) if summary.exists() else {}
    row = {
        "buckets": buckets, "instances": instances, "wins": wins,
        "wins_per_s": wins / seconds,
        "wins_per_commit": wins / max(d["Com_commit"], 1),
        "wins_per_join_transaction": wins / max(joins, 1),
        "lock_waits_per_1000": 1000 * d["Innodb_row_lock_waits"] / max(wins, 1),
        "lock_ms_per_1000": 1000 * d["Innodb_row_lock_time"] / max(wins, 1),
        "statements_per_win": d["Questions"] / max(wins, 1),
        "rows_written_per_win": (d["Handler_write"] + d["Handler_update"]
                                 + d["Handler_delete"]) / max(wins, 1),
        "k6": k.get("counts"),
        "waits": dict(sampler.shapes.most_common(12)) if sampler else None,
    }
    (RESULTS / f"write-path-{phase}.json").write_text(json.dumps(row, indent=1))
    return row


def main():
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [one_phase(run, b, i) for run in range(1, RUNS + 1) for b, i in PHASES]
    print(f"\nThe write path's mechanism: {VUS} VUs for {DURATION} a phase, every user distinct, "
          f"stock {STOCK}; MariaDB's counters over the load until published and applied, per win\n")
    print("| run | buckets | instances | wins/s | wins per commit | wins per join transaction "
          "| row-lock waits /1,000 wins | row-lock ms /1,000 wins | statements per win "
          "| rows written per win |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in enumerate(rows):
        print(f"| {n // len(PHASES) + 1} | {r['buckets']} | {r['instances']} | {r['wins_per_s']:.0f} "
              f"| {r['wins_per_commit']:.1f} | {r['wins_per_join_transaction']:.1f} "
              f"| {r['lock_waits_per_1000']:.1f} | {r['lock_ms_per_1000']:.0f} "
              f"| {r['statements_per_win']:.2f} | {r['rows_written_per_win']:.2f} |")
    for n, r in enumerate(rows):
        if r["waits"]:
            print(f"\nLock waits sampled, run {n // len(PHASES) + 1}, {r['buckets']} bucket(s) on "
                  f"{r['instances']} instance(s) (samples: waiting statement):\n")
            for shape, count in r["waits"].items():
                print(f"- {count}: `{shape}`")


if __name__ == "__main__":
    main()
