"""What the benchmarks' and the browser checks' Python parts share: MariaDB as root over its
socket, MariaDB's global counters, an instance of the release build started and believed ready
once it answers, a JSON call to the API, the CPU of processes and their threads from /proc, and
Redis's counters."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def http(method, url, body=None, token=None, timeout=10):
    """(status, JSON body or None) of one API call; an unreadable body as {"raw": …}."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, {"raw": raw[:200].decode(errors="replace")}


def create_campaign(base, token, stock, buckets, name):
    """Creates a campaign of `stock` units (in `buckets` buckets when more than one) through the
    admin API and returns its id; exits the script when the service refuses. Benchmarks create
    it before the load they measure: a bucketed campaign's creation (its rows, every bucket's
    gate loaded) is a one-off, not a cost of its wins."""
    spec = {"name": name, "totalStock": stock, "perUserLimit": 1}
    if buckets > 1:
        spec["buckets"] = buckets
    code, body = http("POST", f"{base}/api/v1/campaigns", spec, token, 60)
    if code != 201:
        sys.exit(f"creating the campaign failed: HTTP {code} {body}")
    return body["id"]


def sql(query, db=None):
    """Runs `query` as root over the unix socket (sudo when not root); returns the rows."""
    cmd = ([] if os.geteuid() == 0 else ["sudo"]) + ["mariadb", "-N", "-B"] + ([db] if db else []) + ["-e", query]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def status(names):
    """MariaDB's global counters `names` (SHOW GLOBAL STATUS), as integers."""
    listed = ",".join(f"'{n}'" for n in names)
    return {k: int(v) for k, v in sql(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({listed})")}


def get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


def start(binary, env, port, log_path, name="the service"):
    """`binary serve` with `env` on 127.0.0.1:`port`, its log in `log_path` (None: discarded);
    returns the process once `/health/ready` answers (exits the script if it never does)."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{name} exited during start-up" + (f" (see {log_path})" if log_path else ""))
        try:
            get(port, "/health/ready")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{name} was not ready within 60 s")


def stop(procs, timeout=30):
    """SIGTERM to each, then waits (SIGKILL past `timeout`)."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def ticks_of(stat):
    """utime + stime (fields 14 and 15) of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line,
    in clock ticks."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def ticks(pid):
    """The CPU ticks process `pid` has spent."""
    return ticks_of(Path(f"/proc/{pid}/stat").read_text())


def threads(pids):
    """CPU ticks of the threads of `pids` by name, digits dropped (tokio-rt-worker, rdk:broker, …),
    summed over the processes: which part of the service spent them. A thread that ended between
    two samples is missed."""
    by_name = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            name = re.sub(r"[0-9]+", "", stat[stat.index("(") + 1:stat.rindex(")")]) or "?"
            by_name[name] = by_name.get(name, 0) + ticks_of(stat)
    return by_name


def mariadb_pid():
    """The pid of the MariaDB of scripts/services.sh."""
    return int(Path("/run/mysqld/mysqld.pid").read_text().strip())


def redis_info(section):
    """Redis's INFO `section` (`stats`, `server`, …) as a dict of its numeric fields, from the
    Redis of scripts/services.sh (REDIS_URL, redis://127.0.0.1:6379); empty when unreadable."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    out = subprocess.run(["redis-cli", "-u", url, "INFO", section], capture_output=True,
                         text=True).stdout
    return {k: int(v) for k, v in re.findall(r"^(\w+):(\d+)\r?$", out, re.M)}


def redis_main_thread_cpu():
    """Seconds of CPU Redis's main thread has used (INFO cpu, user + system): the thread that
    runs every script and command, one at a time; 0.0 when unreadable."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    out = subprocess.run(["redis-cli", "-u", url, "INFO", "cpu"], capture_output=True,
                         text=True).stdout
    fields = dict(re.findall(r"^(used_cpu_\w+):([0-9.]+)\r?$", out, re.M))
    return sum(float(fields.get(f"used_cpu_{k}_main_thread", 0.0)) for k in ("sys", "user"))


def metric_sum(ports, name):
    """A counter's value summed over the instances at `ports` (every series of it)."""
    total = 0.0
    for port in ports:
        for line in get(port, "/metrics").splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total
