#!/usr/bin/env python3
"""CPU per win (docs/design.md §10, the principal figure): the CPU the service and MariaDB spend per
win until it is published and applied by both consumers, read from /proc. Run it through
scripts/bench-cpu-per-win.sh (it starts the services, builds the release binary and installs k6).

Each run: a fresh database, `firstcome serve` as it runs by default (relay, both consumers and
the embedded broker in process), one big campaign of STOCK units (default WINS) in BUCKETS
buckets, created first and measured apart (a one-off: a bucketed campaign's creation writes its
rows and loads every bucket's gate), joined by WINS distinct users (k6/flash-sale.js with
ITERATIONS=WINS and CAMPAIGN_ID, so no request is refused and nothing but wins is paid for), then
a wait until the outbox is drained and both consumers have applied every event.
CPU ticks of the service and of mariadbd are taken at the first request and once everything is
applied; MariaDB's own counters (statements, rows, redo bytes) over the same span give the
statements and rows per win. Then the retention's share: the published outbox rows and the inbox
rows are deleted by the statements the service's cleanups run (they run hours later in a real
sale, so they are measured apart and added).

Output: one row per run and the range over runs (min–max), as a markdown table.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import bench_common as common
from bench_common import mariadb_pid, threads, ticks

ROOT = Path(__file__).resolve().parent.parent
ENV = os.environ
RUNS = int(ENV.get("RUNS", "3"))
WINS = int(ENV.get("WINS", "50000"))
# The campaign's stock (default WINS: every request wins) and its buckets (docs/design.md §21).
STOCK = int(ENV.get("STOCK", str(WINS)))
BUCKETS = int(ENV.get("BUCKETS", "1"))
VUS = int(ENV.get("VUS", "200"))
PORT = int(ENV.get("PORT", "8080"))
DB = ENV.get("BENCH_DB", "firstcome_cpu")
BIN = ENV["FIRSTCOME_BIN"]
K6 = ENV["K6"]
RESULTS = Path(ENV.get("RESULTS_DIR", ROOT / "k6" / "results"))
PROFILE = ENV.get("PROFILE", "0") == "1"
PERF = ENV.get("PERF", "0") == "1"
# The service under valgrind's callgrind, counting only the load's instructions: the same count
# for the same binary and load whatever else the machine does, where /proc's CPU swings ±25 %.
CALLGRIND = ENV.get("CALLGRIND", "0") == "1"
# Statements run in the bench database once the service has migrated it, before the load: a way
# to measure a schema change (an index dropped, a column's type) before writing its migration.
PRE_SQL = ENV.get("PRE_SQL", "")
TICK = os.sysconf("SC_CLK_TCK")
BASE = f"http://127.0.0.1:{PORT}"
# MariaDB's counters taken around each phase (SHOW GLOBAL STATUS; this server serves nothing else
# during the run: the test suite's MariaDB is another process). `Com_admin_commands` counts the
# pool's pings (COM_PING), which `Questions` leaves out; `Com_stmt_prepare` the statements each
# pooled connection prepares the first time it runs a statement text (a long one costs MariaDB a
# parse and the client a definition per parameter).
COUNTERS = [
    "Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_commit",
    "Com_rollback", "Com_admin_commands", "Com_stmt_prepare", "Handler_write", "Handler_update", "Handler_delete", "Handler_read_key",
    "Handler_read_next", "Innodb_os_log_written", "Innodb_data_written", "Innodb_data_fsyncs",
]
# InnoDB's own counters beside them (information_schema.INNODB_METRICS, turned on by `main`): a
# page reorganised or split logs about a page of redo, so these say where redo comes from.
INNODB_METRICS = ["index_page_reorg_attempts", "index_page_splits"]
COUNTERS += INNODB_METRICS


def log(msg):
    print(f"[bench-cpu] {msg}", file=sys.stderr, flush=True)


def sql(query, db=None):
    """Runs `query` as root over the unix socket (sudo when not root); returns the rows."""
    cmd = ([] if os.geteuid() == 0 else ["sudo"]) + ["mariadb", "-N", "-B"] + ([db] if db else []) + ["-e", query]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def status():
    names = ",".join(f"'{n}'" for n in COUNTERS if n not in INNODB_METRICS)
    got = {k: int(v) for k, v in sql(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")}
    metrics = ",".join(f"'{n}'" for n in INNODB_METRICS)
    got.update({k: int(v) for k, v in sql(
        f"SELECT NAME, COUNT FROM information_schema.INNODB_METRICS WHERE NAME IN ({metrics})")})
    return got


def get(path, timeout=2.0):
    with urllib.request.urlopen(BASE + path, timeout=timeout) as r:
        return r.read().decode()


def applied(metrics, consumer):
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("firstcome_consumer_events_total{") and f'consumer="{consumer}"' in line \
                and 'result="applied"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def redis_commands():
    """Commands the Redis server has processed so far (INFO stats), or 0 when unreadable."""
    return common.redis_info("stats").get("total_commands_processed", 0)


class Sample:
    def __init__(self, service_pid, db_pid):
        self.at = time.monotonic()
        self.redis = redis_commands()
        self.service = ticks(service_pid)
        self.mariadb = ticks(db_pid)
        self.threads = threads([service_pid])
        self.status = status()

    def minus(self, earlier):
        return {
            "seconds": self.at - earlier.at,
            "service": (self.service - earlier.service) / TICK,
            "mariadb": (self.mariadb - earlier.mariadb) / TICK,
            "redis": self.redis - earlier.redis,
            "status": {k: self.status[k] - earlier.status[k] for k in COUNTERS},
            "threads": {k: (v - earlier.threads.get(k, 0)) / TICK for k, v in self.threads.items()},
        }


def start_service(n):
    sql(f"DROP DATABASE IF EXISTS `{DB}`; CREATE DATABASE `{DB}`")
    env = dict(ENV)
    env.update({
        "DATABASE_URL": f"mysql://firstcome:firstcome@127.0.0.1:{ENV.get('DB_PORT', '3306')}/{DB}",
        "HTTP_ADDR": f"127.0.0.1:{PORT}",
        "RUST_LOG": ENV.get("RUST_LOG", "warn"),
        "REDIS_KEY_PREFIX": f"firstcome-bench-cpu-{os.getpid()}-{n}:",
        # k6's VUs are all one client address.
        "HTTP_MAX_CONNECTIONS_PER_CLIENT": "1000000",
    })
    logf = open(RESULTS / f"cpu-per-win-service-{n}.log", "w")
    cmd = [BIN, "serve"]
    if CALLGRIND:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={RESULTS / f'cpu-per-win-callgrind-{n}.out'}"] + cmd
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    for _ in range(6000 if CALLGRIND else 600):
        if proc.poll() is not None:
            sys.exit(f"the service exited during start-up (see {logf.name})")
        try:
            get("/health/ready")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"the service was not ready within {600 if CALLGRIND else 60} s")


def stop_service(proc, timeout):
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_applied(wins, timeout=300.0):
    """Until the outbox has nothing pending and both consumers applied `wins` events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = int(sql("SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'", DB)[0][0])
        if pending == 0:
            m = get("/metrics")
            if applied(m, "stats") >= wins and applied(m, "rewards") >= wins:
                return
        time.sleep(0.2)
    sys.exit(f"not everything was published and applied within {timeout:.0f} s")


def retention(service_pid, db_pid):
    """The cleanups' statements (relay/store.rs delete_published, consumer/inbox.rs clean), with
    a retention of 0, in their batch sizes, until nothing is left."""
    before = Sample(service_pid, db_pid)
    batches = [
        "DELETE FROM outbox_event WHERE status = 'PUBLISHED' "
        "AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6)) "
        "AND published_at < UTC_TIMESTAMP(6) ORDER BY lease_until, lease_owner, id LIMIT 1000",
        # A UUIDv7 bound past every event of the run (its first digits are the time in ms).
        "DELETE FROM consumer_inbox WHERE consumer = 'stats' AND event_id < 'ffffffff' "
        "AND processed_at < UTC_TIMESTAMP(6) LIMIT 1000",
        "DELETE FROM consumer_inbox WHERE consumer = 'rewards' AND event_id < 'ffffffff' "
        "AND processed_at < UTC_TIMESTAMP(6) LIMIT 1000",
    ]
    for stmt in batches:
        while True:
            n = sql(f"{stmt}; SELECT ROW_COUNT()", DB)
            if int(n[-1][0]) == 0:
                break
    return Sample(service_pid, db_pid).minus(before)


def start_perf(service_pid, db_pid, n):
    """perf samples of the service and mariadbd until [`stop_perf`], with call graphs (frame
    pointers: meaningful for a build with them, see scripts/bench-cpu-per-win.sh)."""
    data = RESULTS / f"cpu-per-win-perf-{n}.data"
    return subprocess.Popen(["perf", "record", "-q", "-F", "999", "--call-graph", "fp", "-p",
                             f"{service_pid},{db_pid}", "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_perf(perf, n):
    perf.send_signal(2)  # SIGINT: perf writes its file and exits
    perf.wait(timeout=60)
    data = RESULTS / f"cpu-per-win-perf-{n}.data"
    out = RESULTS / f"cpu-per-win-perf-{n}.txt"
    with open(out, "w") as f:
        # Self time by process and library, then by symbol; then the service's time inclusive of
        # what each function calls (where the time goes, by the code that spends it).
        for args in (["--no-children", "--sort", "comm,dso"], ["--no-children", "--sort", "comm,dso,sym"],
                     ["--children", "--comm", "tokio-rt-worker", "--sort", "sym", "-g", "none"]):
            f.write(subprocess.run(
                ["perf", "report", "-i", str(data), "--stdio", "--percent-limit", "0.5"] + args,
                capture_output=True, text=True).stdout)
    log(f"perf report: {out}")


def callgrind_control(pid, instrument):
    subprocess.run(["callgrind_control", "-i", instrument, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def callgrind_report(n, wins):
    """Instructions per win from the run's callgrind file (written when the service exits), and
    the functions by inclusive count (k6/results/cpu-per-win-callgrind-N.txt)."""
    data = RESULTS / f"cpu-per-win-callgrind-{n}.out"
    # "totals:" (the last dump's); the header's "summary:" is 0 when collection began off.
    total = max(int(line.split()[1]) for line in open(data) if line.startswith(("summary:", "totals:")))
    out = RESULTS / f"cpu-per-win-callgrind-{n}.txt"
    with open(out, "w") as f:
        f.write(subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99",
                                str(data)], capture_output=True, text=True).stdout)
    log(f"callgrind: {total / wins:,.0f} instructions per win in the service ({out})")
    return total / wins


def create_campaign(proc_pid, db_pid):
    """Creates the run's campaign (STOCK units in BUCKETS buckets) before the load, so that its
    creation (a bucketed campaign's rows and gates, a one-off) stays out of the CPU per win;
    returns its id and what the creation cost, apart."""
    before = Sample(proc_pid, db_pid)
    campaign_id = common.create_campaign(BASE, ENV["ADMIN_TOKEN"], STOCK, BUCKETS,
                                         f"bench-cpu {time.time():.0f}")
    return campaign_id, Sample(proc_pid, db_pid).minus(before)


def one_run(n):
    proc = start_service(n)
    db_pid = mariadb_pid()
    if PRE_SQL:
        log(f"PRE_SQL: {PRE_SQL}")
        sql(PRE_SQL, DB)
    slow = f"/tmp/firstcome-cpu-slow-{os.getpid()}-{n}.log" if PROFILE else None
    slow_on = False  # whether this run turned MariaDB's slow log on and has not turned it off
    try:
        if slow:
            sql(f"SET GLOBAL slow_query_log_file = '{slow}'; SET GLOBAL log_slow_verbosity = ''; "
                "SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = 1")
            slow_on = True
        summary = RESULTS / f"cpu-per-win-k6-{n}.json"
        campaign_id, created = create_campaign(proc.pid, db_pid)
        log(f"run {n}/{RUNS}: campaign {campaign_id} created ({BUCKETS} bucket(s)) in "
            f"{created['seconds'] * 1000:.0f} ms, service {created['service'] * 1000:.0f} ms CPU, "
            f"MariaDB {created['mariadb'] * 1000:.0f} ms; {WINS} wins by {WINS} distinct users, {VUS} VUs")
        perf = start_perf(proc.pid, db_pid, n) if PERF else None
        if CALLGRIND:
            callgrind_control(proc.pid, "on")
        before = Sample(proc.pid, db_pid)
        k6 = subprocess.run(
            [K6, "run", "--quiet", "--no-color", "-e", f"BASE_URL={BASE}", "-e", f"VUS={VUS}",
             "-e", f"ITERATIONS={WINS}", "-e", f"STOCK={STOCK}", "-e", "USER_IDS=distinct",
             "-e", f"BUCKETS={BUCKETS}", "-e", f"CAMPAIGN_ID={campaign_id}",
             "-e", "PATH_KIND=outbox", "-e", f"ADMIN_TOKEN={ENV['ADMIN_TOKEN']}",
             "-e", f"SUMMARY_FILE={summary}", str(ROOT / "k6" / "flash-sale.js")],
            capture_output=True, text=True)
        if k6.returncode not in (0, 99):
            sys.exit(f"k6 failed ({k6.returncode}): {k6.stderr[-2000:]}")
        wins = int(sql("SELECT COUNT(*) FROM participation", DB)[0][0])
        load_end = time.monotonic()
        wait_applied(wins, 3000.0 if CALLGRIND else 300.0)
        if CALLGRIND:
            callgrind_control(proc.pid, "off")
        load = Sample(proc.pid, db_pid).minus(before)
        load["drain"] = time.monotonic() - load_end
        if perf:
            stop_perf(perf, n)
        # The retention's statements stay out of the profile.
        if slow_on:
            slow_on = slow_log_off()
        ret = retention(proc.pid, db_pid)
        refused = WINS - wins
        return {"wins": wins, "refused": refused, "created": created, "load": load, "retention": ret,
                "slow": slow}
    finally:
        if slow_on:
            slow_log_off()
        stop_service(proc, 600 if CALLGRIND else 30)


def slow_log_off():
    """Turns MariaDB's slow log off again; returns False (no longer logging)."""
    sql("SET GLOBAL slow_query_log = 0; SET GLOBAL long_query_time = 10")
    return False


def us(seconds, wins):
    return 1e6 * seconds / wins


def main():
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in INNODB_METRICS:
        sql(f"SET GLOBAL innodb_monitor_enable = '{name}'")
    rows = []
    for n in range(1, RUNS + 1):
        r = one_run(n)
        w = r["wins"]
        if CALLGRIND:
            r["instructions_per_win"] = callgrind_report(n, w)
        load, ret = r["load"], r["retention"]
        row = {
            "wins": w,
            "refused": r["refused"],
            "wins_per_s": w / (load["seconds"] - load["drain"]),
            "drain_s": load["drain"],
            "service": us(load["service"], w),
            "mariadb": us(load["mariadb"], w),
            "retention": us(ret["mariadb"] + ret["service"], w),
            "redis_per_win": load["redis"] / w,
        }
        row["applied"] = row["service"] + row["mariadb"]
        created = r["created"]
        row["created_ms"] = {k: 1000 * created[k] for k in ("seconds", "service", "mariadb")}
        if CALLGRIND:
            row["instructions"] = r["instructions_per_win"]
        row["total"] = row["applied"] + row["retention"]
        row["threads"] = {k: us(v, w) for k, v in load["threads"].items()}
        per_win = {k: (load["status"][k] + ret["status"][k]) / w for k in COUNTERS}
        row["per_win"] = per_win
        rows.append(row)
        (RESULTS / f"cpu-per-win-{n}.json").write_text(json.dumps(r | {"row": row}, indent=1))
        if r["slow"]:
            out = subprocess.run([sys.executable, str(ROOT / "scripts" / "mysql-statements.py"),
                                  r["slow"], "40", str(w)], capture_output=True, text=True).stdout
            (RESULTS / f"cpu-per-win-statements-{n}.md").write_text(out)
            os.remove(r["slow"])
            log(f"statements per win: {RESULTS}/cpu-per-win-statements-{n}.md")
        log(f"run {n}: {row['total']:.0f} µs per win (service {row['service']:.0f}, "
            f"MariaDB {row['mariadb']:.0f}, retention {row['retention']:.0f})")
    report(rows)


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def report(rows):
    note = " (PROFILE=1: the slow log's cost is in these figures)" if PROFILE else ""
    buckets = f", stock {STOCK} in {BUCKETS} buckets" if BUCKETS > 1 else f", stock {STOCK}"
    print(f"\nCPU per win, {len(rows)} runs of {WINS} wins{buckets}, {VUS} VUs{note}:\n")
    print("| run | wins (refused) | wins/s | drain s | service µs | MariaDB µs | **published and applied µs** "
          "| retention µs | total µs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['wins']} ({r['refused']}) | {r['wins_per_s']:.0f} | {r['drain_s']:.1f} | "
              f"{r['service']:.0f} | {r['mariadb']:.0f} | **{r['applied']:.0f}** | {r['retention']:.0f} | "
              f"{r['total']:.0f} |")
    cols = ["wins_per_s", "drain_s", "service", "mariadb", "applied", "retention", "total"]
    fmts = ["{:.0f}", "{:.1f}"] + ["{:.0f}"] * 5
    cells = [span([r[c] for r in rows], f) for c, f in zip(cols, fmts)]
    cells[4] = f"**{cells[4]}**"
    print(f"| range | | {' | '.join(cells)} |")
    made = [r["created_ms"] for r in rows]
    print(f"\nThe campaign's creation before the load, apart from the figures above: "
          f"{span([m['seconds'] for m in made], '{:.0f}')} ms, the service's CPU "
          f"{span([m['service'] for m in made], '{:.0f}')} ms, MariaDB's "
          f"{span([m['mariadb'] for m in made], '{:.0f}')} ms.")
    if CALLGRIND:
        print("\nThe service's instructions per win (callgrind, the load until applied; its CPU "
              "above is valgrind's): " + ", ".join(f"{r['instructions']:,.0f}" for r in rows))
    print("\nThe service's CPU per win by thread (µs; tokio-rt-worker: HTTP, the gate, group commit, the "
          "relay's and consumers' tasks; rdk:*: librdkafka, the embedded broker included), min–max:\n")
    print("| thread | µs per win |")
    print("|---|---:|")
    names = sorted({k for r in rows for k in r["threads"]},
                   key=lambda k: -sum(r["threads"].get(k, 0) for r in rows))
    for k in names:
        vals = [r["threads"].get(k, 0) for r in rows]
        if max(vals) >= 0.5:
            print(f"| {k} | {span(vals, '{:.1f}')} |")
    print("\nMariaDB's work per win (SHOW GLOBAL STATUS over the load and the retention, "
          "mean of the runs):\n")
    print("| counter | per win |")
    print("|---|---:|")
    for k in COUNTERS:
        v = sum(r["per_win"][k] for r in rows) / len(rows)
        print(f"| {k} | {v:.2f} |")


if __name__ == "__main__":
    main()
