#!/usr/bin/env python3
"""A big bucketed campaign's creation and its cost at rest (docs/design.md §21: created in ≤ 1 s at
1,024 buckets; a bucket's background work costs nothing while the campaign is idle). Run it
through scripts/bench-at-rest.sh (it starts the services and builds the release binary).

One run: a fresh database, `firstcome serve` as it runs by default, CAMPAIGNS campaigns of
BUCKETS buckets created one after another through the API (each answer's time: the rows, the
gates primed), then IDLE seconds with nobody joining, over which the statements MariaDB ran, the
commands Redis processed and the service's CPU are taken (from SHOW GLOBAL STATUS, INFO stats and
/proc). A campaign is at rest from its creation until its first join, and again twice
RESERVATION_TIMEOUT_MS and 12 s after its last one (src/gate/activity.rs).
"""
import json
import os
import time
import urllib.request

import bench_common as common

ENV = os.environ
BIN = ENV["FIRSTCOME_BIN"]
DB = ENV.get("BENCH_DB", "firstcome_rest")
PORT = int(ENV.get("PORT", "8080"))
RUNS = int(ENV.get("RUNS", "3"))
CAMPAIGNS = int(ENV.get("CAMPAIGNS", "4"))
BUCKETS = int(ENV.get("BUCKETS", "1024"))
IDLE = float(ENV.get("IDLE", "20"))
TOKEN = ENV["ADMIN_TOKEN"]
BASE = f"http://127.0.0.1:{PORT}"


def counters(pid):
    status = common.status(["Questions", "Com_select"])
    redis = common.redis_info("stats")["total_commands_processed"]
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return {"at": time.monotonic(), "statements": status["Questions"], "redis": redis,
            "cpu": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}


def start(n):
    common.sql(f"DROP DATABASE IF EXISTS `{DB}`; CREATE DATABASE `{DB}`")
    env = dict(ENV, DATABASE_URL=f"mysql://firstcome:firstcome@127.0.0.1:{ENV.get('DB_PORT', '3306')}/{DB}",
               HTTP_ADDR=f"127.0.0.1:{PORT}", RUST_LOG=ENV.get("RUST_LOG", "warn"),
               REDIS_KEY_PREFIX=f"firstcome-bench-rest-{os.getpid()}-{n}:")
    return common.start(BIN, env, PORT, None)


def create(i):
    body = json.dumps({"name": f"at rest {i}", "totalStock": 1_000_000, "perUserLimit": 1, "buckets": BUCKETS})
    req = urllib.request.Request(f"{BASE}/api/v1/campaigns", data=body.encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    t = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
    return time.monotonic() - t


def one_run(n):
    proc = start(n)
    try:
        created = [create(i) for i in range(CAMPAIGNS)]
        time.sleep(2)  # the creations' own statements settle
        before = counters(proc.pid)
        time.sleep(IDLE)
        after = counters(proc.pid)
    finally:
        common.stop([proc])
    s = after["at"] - before["at"]
    return {"created_ms": [1000 * c for c in created],
            "statements_per_s": (after["statements"] - before["statements"]) / s,
            "redis_per_s": (after["redis"] - before["redis"]) / s,
            "cpu_percent": 100 * (after["cpu"] - before["cpu"]) / s}


def main():
    rows = [one_run(n) for n in range(1, RUNS + 1)]
    print(f"\n{CAMPAIGNS} campaigns of {BUCKETS} buckets each, then {IDLE:.0f} s at rest, {RUNS} runs\n")
    print("| run | creation ms (each) | statements/s at rest | Redis commands/s at rest | service CPU at rest |")
    print("|---:|---|---:|---:|---:|")
    for n, r in enumerate(rows, 1):
        print(f"| {n} | {', '.join(f'{c:.0f}' for c in r['created_ms'])} | {r['statements_per_s']:.0f} "
              f"| {r['redis_per_s']:.0f} | {r['cpu_percent']:.1f} % of a core |")


if __name__ == "__main__":
    main()
