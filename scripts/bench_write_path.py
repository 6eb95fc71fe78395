#!/usr/bin/env python3
"""The write path's mechanism on two cores (docs/design.md §10 "Many cores", §23):
what one campaign's wins cost MariaDB as it spreads over buckets and instances, from MariaDB's own
counters. On two shared cores contention hides in the rates, so the mechanism is measured instead:
row-lock waits and their time per 1,000 wins (two writers waiting on one row), wins per commit
and per join transaction (how big the batches stay; a transaction's wins share their
`created_at`), statements and rows written per win. Run it through
scripts/bench-write-path.sh (it starts the services, builds the release binary and installs k6).

Each phase: a fresh database, INSTANCES instances of `firstcome serve` as they run by default (each
with its relay, both consumers and its embedded broker), one campaign of STOCK units in BUCKETS
buckets created through the first before the load (outside its figures), VUS looping VUs for
DURATION, every request a distinct user who wins, the VUs spread over the instances
(k6/flash-sale.js with BASE_URLS and CAMPAIGN_ID); then a wait until the
outbox is drained and every instance's consumers applied what its relay published. MariaDB's
counters (SHOW GLOBAL STATUS) are taken before the load and once everything is applied.

A phase `BxN` spreads the joins over the N instances; `BxNr` sends every join to the first while
all N run (their relays and consumers too): the batches of one writer with the other instances'
work beside it, what routing a campaign's writes to one instance would give. Beside MariaDB's
counters, the CPU the instances and MariaDB spent per win over the same span, from /proc (the
figure of scripts/bench-cpu-per-win.sh, less its precision: a 15-second phase on shared cores),
and Redis's: its CPU and its socket reads per win (INFO stats: a call, or a pipeline of calls that
arrived together; a count, steadier than the CPU: what the gate and the hand-overs between
instances cost it in round trips).

It also prints one campaign's serial sections (docs/design.md §10 "Serial sections") in µs a win:
Redis's main thread (INFO cpu, its own counters), the stock rows' hold and the lanes' busy time
(the service's `firstcome_write_row_hold_seconds_total` and `firstcome_write_lane_busy_seconds_total`,
summed over the instances), and the ceiling the longest implies. The consumers' µs an event of one
campaign's partition is scripts/bench-consumers.sh's "one hot campaign" row.

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
from bench_common import (get, mariadb_pid, metric_sum, redis_info, redis_main_thread_cpu, sql,
                          threads, ticks)

ROOT = Path(__file__).resolve().parent.parent
ENV = os.environ
RUNS = int(ENV.get("RUNS", "1"))
PHASES = ENV.get("PHASES", "1x1,64x1,1x2,64x2").split(",")
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


def parse_phase(text):
    """`BxN` or `BxNr`: (buckets, instances, routed to the first)."""
    m = re.fullmatch(r"(\d+)x(\d+)(r?)", text.strip())
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        sys.exit(f"PHASES: {text!r} is not BxN or BxNr (e.g. 64x2, 1x2r)")
    return int(m[1]), int(m[2]), m[3] == "r"


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


# A campaign's serial sections (docs/design.md §10 "Serial sections"): the work that, for one
# campaign, runs one at a time whatever the cores, as seconds summed over the load.
SERIAL = {
    "row_hold": "firstcome_write_row_hold_seconds_total",
    "lane_busy": "firstcome_write_lane_busy_seconds_total",
}


def serial_sections(ports):
    """Redis's main thread's CPU, the rows' hold and the lanes' busy time so far, in seconds;
    read as the load ends (not after the drain, which adds no win)."""
    sections = {name: metric_sum(ports, metric) for name, metric in SERIAL.items()}
    sections["redis"] = redis_main_thread_cpu()
    return sections


# The gate's reservation calls and the joins they decided (docs/design.md §10 "The Redis thread").
BATCHES = ("firstcome_gate_reserve_batch_calls_total", "firstcome_gate_reserve_batched_joins_total")


def one_phase(run, buckets, instances, routed):
    phase = f"{run}-{buckets}x{instances}{'r' if routed else ''}"
    sql(f"DROP DATABASE IF EXISTS `{DB}`; CREATE DATABASE `{DB}`")
    procs = []
    try:
        for n in range(instances):
            procs.append(start(phase, n))
        ports = [PORT + n for n in range(instances)]
        join_ports = ports[:1] if routed else ports
        summary = RESULTS / f"write-path-{phase}-k6.json"
        sampler = WaitSampler() if WAITS else None
        log(f"run {run}: {buckets} bucket(s), {instances} instance(s)"
            f"{', every join to the first' if routed else ''}, {VUS} VUs for {DURATION}")
        db_pid = mariadb_pid()
        campaign_id = common.create_campaign(f"http://127.0.0.1:{PORT}", ENV["ADMIN_TOKEN"], STOCK,
                                             buckets, f"bench-write-path {phase}")
        before = common.status(COUNTERS)
        redis_before = redis_info("stats")["total_reads_processed"]
        serial_before = serial_sections(ports)
        batches_before = [metric_sum(ports, m) for m in BATCHES]
        redis_pid = redis_info("server")["process_id"]
        cpu_before = [ticks(p.pid) for p in procs], ticks(db_pid), ticks(redis_pid)
        threads_before = threads([p.pid for p in procs])
        if sampler:
            sampler.start()
        k6 = subprocess.run(
            [K6, "run", "--quiet", "--no-color", "-e", f"BASE_URL=http://127.0.0.1:{PORT}",
             "-e", "BASE_URLS=" + ",".join(f"http://127.0.0.1:{p}" for p in join_ports),
             "-e", f"VUS={VUS}", "-e", f"DURATION={DURATION}", "-e", f"STOCK={STOCK}",
             "-e", "USER_IDS=distinct", "-e", f"BUCKETS={buckets}", "-e", f"CAMPAIGN_ID={campaign_id}",
             "-e", "PATH_KIND=outbox",
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
        serial_after = serial_sections(ports)
        batches_after = [metric_sum(ports, m) for m in BATCHES]
        wait_applied(ports, wins)
        after = common.status(COUNTERS)
        redis_after = redis_info("stats")["total_reads_processed"]
        cpu_after = [ticks(p.pid) for p in procs], ticks(db_pid), ticks(redis_pid)
        threads_after = threads([p.pid for p in procs])
    finally:
        common.stop(procs)
    d = {k: after[k] - before[k] for k in COUNTERS}
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    service_us = sum(a - b for a, b in zip(cpu_after[0], cpu_before[0])) * tick_us / max(wins, 1)
    mariadb_us = (cpu_after[1] - cpu_before[1]) * tick_us / max(wins, 1)
    redis_us = (cpu_after[2] - cpu_before[2]) * tick_us / max(wins, 1)
    seconds = float(re.sub(r"[^0-9.]", "", DURATION)) * (60 if DURATION.endswith("m") else 1)
    k = json.loads(summary.read_text()) if summary.exists() else {}
    row = {
        "buckets": buckets, "instances": instances, "routed": routed, "wins": wins,
        "wins_per_s": wins / seconds,
        "wins_per_commit": wins / max(d["Com_commit"], 1),
        "wins_per_join_transaction": wins / max(joins, 1),
        "lock_waits_per_1000": 1000 * d["Innodb_row_lock_waits"] / max(wins, 1),
        "lock_ms_per_1000": 1000 * d["Innodb_row_lock_time"] / max(wins, 1),
        "statements_per_win": d["Questions"] / max(wins, 1),
        "rows_written_per_win": (d["Handler_write"] + d["Handler_update"]
                                 + d["Handler_delete"]) / max(wins, 1),
        "service_us_per_win": service_us,
        "service_threads_us_per_win": {name: (threads_after[name] - threads_before.get(name, 0))
                                       * tick_us / max(wins, 1) for name in threads_after},
        "mariadb_us_per_win": mariadb_us,
        "redis_reads_per_win": (redis_after - redis_before) / max(wins, 1),
        "redis_us_per_win": redis_us,
        "serial_us_per_win": {k: (serial_after[k] - serial_before[k]) * 1e6 / max(wins, 1)
                              for k in serial_after},
        "joins_per_reserve_call": (batches_after[1] - batches_before[1])
                                  / max(batches_after[0] - batches_before[0], 1),
        "k6": k.get("counts"),
        "waits": dict(sampler.shapes.most_common(12)) if sampler else None,
    }
    (RESULTS / f"write-path-{phase}.json").write_text(json.dumps(row, indent=1))
    return row


def main():
    RESULTS.mkdir(parents=True, exist_ok=True)
    phases = [parse_phase(p) for p in PHASES]
    rows = [one_phase(run, b, i, r) for run in range(1, RUNS + 1) for b, i, r in phases]
    print(f"\nThe write path's mechanism: {VUS} VUs for {DURATION} a phase, every user distinct, "
          f"stock {STOCK}; MariaDB's counters over the load until published and applied, per win\n")
    print("| run | buckets | instances | wins/s | wins per commit | wins per join transaction "
          "| row-lock waits /1,000 wins | row-lock ms /1,000 wins | statements per win "
          "| rows written per win | service µs per win | MariaDB µs per win "
          "| Redis reads per win | Redis µs per win |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in enumerate(rows):
        instances = f"{r['instances']}{' (joins to one)' if r['routed'] else ''}"
        print(f"| {n // len(PHASES) + 1} | {r['buckets']} | {instances} | {r['wins_per_s']:.0f} "
              f"| {r['wins_per_commit']:.1f} | {r['wins_per_join_transaction']:.1f} "
              f"| {r['lock_waits_per_1000']:.1f} | {r['lock_ms_per_1000']:.0f} "
              f"| {r['statements_per_win']:.2f} | {r['rows_written_per_win']:.2f} "
              f"| {r['service_us_per_win']:.0f} | {r['mariadb_us_per_win']:.0f} "
              f"| {r['redis_reads_per_win']:.2f} | {r['redis_us_per_win']:.0f} |")
    print("\nOne campaign's serial sections, µs per win (docs/design.md §10): Redis's main thread "
          "(its own CPU counters, every instance's calls), the stock rows' hold (guarded decrement "
          "to COMMIT's answer) and the lanes' busy time, summed over every transaction and lane; "
          "ceiling = 10⁶ ÷ the longest, in wins/s. With several lanes or writers at once (buckets, "
          "WRITER_PER_CAMPAIGN=false) the sums overlap in time: a sum over the lanes, not one "
          "lane's. Joins a call: the reservations' batches' mean size (REDIS_RESERVE_BATCH_MAX).\n")
    print("| run | buckets | instances | wins/s | Redis µs | joins a call | row hold µs "
          "| lane busy µs | ceiling wins/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in enumerate(rows):
        s = r["serial_us_per_win"]
        longest = max(s["redis"], s["row_hold"], s["lane_busy"])
        instances = f"{r['instances']}{' (joins to one)' if r['routed'] else ''}"
        print(f"| {n // len(PHASES) + 1} | {r['buckets']} | {instances} | {r['wins_per_s']:.0f} "
              f"| {s['redis']:.1f} | {r['joins_per_reserve_call']:.1f} | {s['row_hold']:.1f} "
              f"| {s['lane_busy']:.1f} "
              f"| {1e6 / longest if longest else 0:,.0f} |")
    names = Counter()
    for r in rows:
        names.update(r["service_threads_us_per_win"])
    top = [name for name, _ in names.most_common(6)]
    print("\nThe instances' CPU by thread, µs per win (the six busiest names, summed over the instances):\n")
    print("| run | buckets | instances | " + " | ".join(top) + " | the rest |")
    print("|---:|---:|---:|" + "---:|" * (len(top) + 1))
    for n, r in enumerate(rows):
        t = r["service_threads_us_per_win"]
        rest = sum(v for k, v in t.items() if k not in top)
        instances = f"{r['instances']}{' (joins to one)' if r['routed'] else ''}"
        print(f"| {n // len(PHASES) + 1} | {r['buckets']} | {instances} | "
              + " | ".join(f"{t.get(k, 0):.1f}" for k in top) + f" | {rest:.1f} |")
    for n, r in enumerate(rows):
        if r["waits"]:
            print(f"\nLock waits sampled, run {n // len(PHASES) + 1}, {r['buckets']} bucket(s) on "
                  f"{r['instances']} instance(s) (samples: waiting statement):\n")
            for shape, count in r["waits"].items():
                print(f"- {count}: `{shape}`")


if __name__ == "__main__":
    main()
