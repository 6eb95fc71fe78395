#!/usr/bin/env python3
"""Correctness checks and the comparison reports for scripts/bench.sh (Python standard library only).

Three subcommands:

  verify  After one flash-sale run: checks the campaign through the HTTP API (exactly STOCK
          accepted, nobody twice, every event published) and writes the findings as JSON.
          The admin token is read from the ADMIN_TOKEN environment variable, never from argv.

  report  Reads the k6 summaries (health.json, outbox.json, sync.json) and the verify results
          (verify-outbox.json, verify-sync.json) from a results directory and writes report.md
          and report.svg there (plus copies elsewhere with --copy-md/--copy-svg). Prints the
          markdown table to stdout.

  rates   The same comparison at equal offered load: reads rates/<outbox|sync>-<rate>.json and
          rates/verify-<outbox|sync>-<rate>.json from a results directory, writes rates.md and
          rates.svg there (achieved throughput and p95/p99 vs offered rate), prints the table.

A check has one of three outcomes: pass, fail, or unavailable (the endpoint it needs answered
404/405 or could not be reached; the report says so instead of crashing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HTTP_TIMEOUT_S = 10.0
PATHS = ("health", "outbox", "sync")
SCENARIOS = {"health": "health_live", "outbox": "flash_sale", "sync": "flash_sale"}

# docs/design.md §10, measured at 500 VUs, 30 s, stock 1,000.
TARGET_LOAD = {"vus": 500, "duration": "30s", "stock": 1000}


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def http_get(url: str, token: str | None = None) -> tuple[int | None, Any, str]:
    """GET url → (status or None when unreachable, parsed JSON or None, raw text or error)."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            status, raw = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return None, None, f"unreachable: {e}"
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return status, body, raw


def missing_endpoint(status: int | None, body: Any) -> bool:
    """The build under test does not have this endpoint (yet): no route, or wrong method."""
    code = body.get("code") if isinstance(body, dict) else None
    return status in (404, 405, 501) and code != "CAMPAIGN_NOT_FOUND"


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, name: str, status: str, detail: str) -> None:
        assert status in ("pass", "fail", "unavailable")
        self.items.append({"name": name, "status": status, "detail": detail})
        print(f"[verify] {status.upper():<11} {name}: {detail}", file=sys.stderr)

    def expect(self, name: str, ok: bool, detail: str) -> None:
        self.add(name, "pass" if ok else "fail", detail)

    def ok(self) -> bool:
        return all(c["status"] == "pass" for c in self.items)


def verify_campaign(base: str, cid: int, stock: int, checks: Checks) -> dict | None:
    status, body, raw = http_get(f"{base}/api/v1/campaigns/{cid}")
    if status != 200 or not isinstance(body, dict):
        checks.add("campaign status", "fail", f"GET /api/v1/campaigns/{cid} → HTTP {status}: {raw[:200]}")
        return None
    accepted, remaining = body.get("acceptedCount"), body.get("remainingStock")
    checks.expect(
        "acceptedCount == STOCK",
        accepted == stock,
        f"acceptedCount {accepted}, STOCK {stock}"
        + ("" if accepted == stock else " (the run did not sell out, or sold too much)"),
    )
    checks.expect("remainingStock == 0", remaining == 0, f"remainingStock {remaining}")
    checks.expect("state == SOLD_OUT", body.get("state") == "SOLD_OUT", f"state {body.get('state')}")
    return body


def verify_participations(base: str, cid: int, stock: int, checks: Checks) -> dict:
    """Walks the paginated list; bounded by a page budget derived from STOCK."""
    limit = 1000
    max_pages = stock // 100 + 20  # enough even if the server caps pages at 100 items
    users: dict[int, int] = {}
    duplicates: list[int] = []
    total_quantity = items_seen = pages = 0
    wrong_campaign = 0
    sequences: set[int] = set()
    last_accepted: dt.datetime | None = None
    cursor: Any = None
    complete = False
    while pages < max_pages:
        url = f"{base}/api/v1/campaigns/{cid}/participations?limit={limit}"
        if cursor is not None:
            url += f"&cursor={cursor}"
        status, body, raw = http_get(url)
        if status == 400 and limit > 100 and pages == 0:
            limit = 100  # the server caps the page size lower than the contract's 1000
            continue
        if missing_endpoint(status, body):
            checks.add(
                "participations list",
                "unavailable",
                f"GET /api/v1/campaigns/{cid}/participations → HTTP {status}: not in this build",
            )
            return {"available": False, "status": status}
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
            checks.add("participations list", "fail", f"HTTP {status}: {raw[:200]}")
            return {"available": True, "status": status}
        pages += 1
        for item in body["items"]:
            items_seen += 1
            uid = item.get("userId")
            users[uid] = users.get(uid, 0) + 1
            if users[uid] == 2:
                duplicates.append(uid)
            total_quantity += int(item.get("quantity") or 0)
            if item.get("campaignId") != cid:
                wrong_campaign += 1
            if isinstance(item.get("sequence"), int):
                sequences.add(item["sequence"])
            t = parse_time(item.get("acceptedAt"))
            if t and (last_accepted is None or t > last_accepted):
                last_accepted = t
        cursor = body.get("nextCursor")
        if cursor is None or not body["items"]:
            complete = True
            break
    if not complete:
        checks.add("participations list", "fail", f"still paginating after {pages} pages (cursor loop?)")
    checks.expect(
        "no userId twice",
        not duplicates,
        f"{items_seen} items, {len(users)} distinct users"
        + (f", duplicated: {duplicates[:10]}" if duplicates else ""),
    )
    checks.expect("sum(quantity) == STOCK", total_quantity == stock, f"sum {total_quantity}, STOCK {stock}")
    checks.expect("items belong to the campaign", wrong_campaign == 0, f"{wrong_campaign} foreign items")
    if sequences:
        checks.expect(
            "FCFS sequences unique",
            len(sequences) == items_seen,
            f"{len(sequences)} distinct sequences for {items_seen} items",
        )
    return {
        "available": True,
        "pages": pages,
        "items": items_seen,
        "distinctUsers": len(users),
        "sumQuantity": total_quantity,
        "duplicates": duplicates[:100],
        "lastAcceptedAt": last_accepted.isoformat() if last_accepted else None,
    }


def outbox_stats(base: str, cid: int, token: str) -> tuple[int | None, Any, str]:
    return http_get(f"{base}/api/v1/admin/outbox?campaignId={cid}", token)


def verify_outbox_path(
    base: str, cid: int, stock: int, token: str, k6_ended_at: float, wait_s: float,
    accepted: int | None, last_accepted: str | None, checks: Checks,
) -> dict:
    """Polls the admin outbox endpoint (bounded by wait_s) until nothing is pending."""
    deadline = time.monotonic() + wait_s
    polls = 0
    first_pending = None
    status, body, raw = outbox_stats(base, cid, token)
    while True:
        polls += 1
        if missing_endpoint(status, body):
            checks.add("outbox drained", "unavailable",
                       f"GET /api/v1/admin/outbox → HTTP {status}: not in this build")
            return {"available": False, "status": status}
        if status != 200 or not isinstance(body, dict):
            checks.add("outbox drained", "fail", f"GET /api/v1/admin/outbox → HTTP {status}: {raw[:200]}")
            return {"available": True, "status": status}
        if first_pending is None:
            first_pending = body.get("pending")
        if body.get("pending") == 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
        status, body, raw = outbox_stats(base, cid, token)
    observed_at = time.time()
    drained = body.get("pending") == 0
    after_k6 = round(observed_at - k6_ended_at, 3) if k6_ended_at else None
    checks.expect(
        "outbox drained (pending == 0)",
        drained,
        f"pending {body.get('pending')} "
        + (f"{after_k6}s after k6 ended" if drained else f"after waiting {wait_s:.0f}s"),
    )
    published = body.get("published")
    checks.expect("published == STOCK", published == stock, f"published {published}, STOCK {stock}")
    checks.expect("no DEAD rows", body.get("dead") == 0, f"dead {body.get('dead')}")
    last_pub = parse_time(body.get("lastPublishedAt"))
    last_win = parse_time(last_accepted)
    lag_ms = round((last_pub - last_win).total_seconds() * 1000, 1) if last_pub and last_win else None
    return {
        "available": True,
        "final": body,
        "pendingAtFirstPoll": first_pending,
        "polls": polls,
        "drainedAfterK6EndS": after_k6 if drained else None,
        "alreadyDrainedAtFirstPoll": drained and first_pending == 0,
        "lastPublishedAt": body.get("lastPublishedAt"),
        "lastPublishedAfterLastWinMs": lag_ms,
        "eventsPublished": published,
        "acceptedCount": accepted,
    }


def verify_sync_path(
    base: str, cid: int, token: str, accepted: int | None, baseline_lost: int, checks: Checks,
) -> dict:
    status, body, raw = outbox_stats(base, cid, token)
    if missing_endpoint(status, body):
        checks.add("syncEventsLost reported", "unavailable",
                   f"GET /api/v1/admin/outbox → HTTP {status}: not in this build")
        return {"available": False, "status": status}
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("syncEventsLost"), int):
        checks.add("syncEventsLost reported", "fail", f"HTTP {status}: {raw[:200]}")
        return {"available": True, "status": status}
    lost = body["syncEventsLost"] - baseline_lost
    checks.add("syncEventsLost reported", "pass",
               f"{lost} events lost after commit during this run (process total {body['syncEventsLost']})")
    rows = sum(int(body.get(k) or 0) for k in ("pending", "published", "dead"))
    checks.expect("sync path wrote no outbox rows", rows == 0, f"{rows} outbox rows for the campaign")
    return {
        "available": True,
        "final": body,
        "syncEventsLost": lost,
        "eventsPublished": (accepted - lost) if isinstance(accepted, int) else None,
        "acceptedCount": accepted,
    }


def cmd_verify(args: argparse.Namespace) -> int:
    base = args.base_url.rstrip("/")
    token = os.environ.get("ADMIN_TOKEN", "")
    checks = Checks()
    result: dict[str, Any] = {"pathKind": args.path_kind, "stock": args.stock, "checkedAt": now_iso()}
    try:
        summary = json.loads(Path(args.summary).read_text())
    except (OSError, ValueError) as e:
        summary = {}
        checks.add("k6 summary", "fail", f"cannot read {args.summary}: {e}")
    cid = summary.get("campaignId")
    result["campaignId"] = cid
    if summary.get("setupError"):
        # No load was applied; checking the campaign would only repeat that.
        checks.add("k6 setup", "unavailable" if summary.get("endpointMissing") else "fail",
                   str(summary["setupError"]))
    elif not isinstance(cid, int):
        checks.add("campaign created", "fail", "no campaign id in the k6 summary (setup() failed?)")
    else:
        campaign = verify_campaign(base, cid, args.stock, checks)
        result["campaign"] = campaign
        accepted = campaign.get("acceptedCount") if campaign else None
        parts = verify_participations(base, cid, args.stock, checks)
        result["participations"] = parts
        if args.path_kind == "outbox":
            result["outbox"] = verify_outbox_path(
                base, cid, args.stock, token, args.k6_ended_at, args.outbox_wait, accepted,
                parts.get("lastAcceptedAt"), checks,
            )
        else:
            baseline = 0
            if args.baseline:
                try:
                    prev = json.loads(Path(args.baseline).read_text())
                    baseline = int(((prev.get("outbox") or {}).get("final") or {}).get("syncEventsLost") or 0)
                except (OSError, ValueError, TypeError):
                    baseline = 0
            result["outbox"] = verify_sync_path(base, cid, token, accepted, baseline, checks)
    result["checks"] = checks.items
    result["ok"] = checks.ok()
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if result["ok"] else 1


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def metric(summary: dict, name: str, scenario: str) -> dict:
    metrics = summary.get("metrics") or {}
    m = metrics.get(f"{name}{{scenario:{scenario}}}") or metrics.get(name) or {}
    return m.get("values") or {}


def row_for(kind: str, summary: dict | None, verify: dict | None, cpu: dict | None = None) -> dict:
    row: dict[str, Any] = {"kind": kind, "present": summary is not None, "verify": verify}
    if summary is None:
        return row
    if summary.get("setupError"):
        row.update(present=False, setup_error=str(summary["setupError"]), config=summary.get("config") or {})
        return row
    # The ceiling run is flash-sale.js's CEILING=1 (scenario flash_sale); older ones health.js.
    sc = summary.get("scenario") or SCENARIOS[kind]
    reqs, dur, failed = metric(summary, "http_reqs", sc), metric(summary, "http_req_duration", sc), metric(
        summary, "http_req_failed", sc)
    secs = float(summary.get("runSeconds") or 0) or 1.0
    counts = summary.get("counts") or {}
    row.update(
        requests=int(reqs.get("count") or 0),
        rps=(reqs.get("count") or 0) / secs,
        p50=dur.get("med"), p95=dur.get("p(95)"), p99=dur.get("p(99)"),
        error_rate=failed.get("rate"),
        errors=int(failed.get("passes") or 0),
        server_errors=int(counts.get("serverErrors") or 0),
        accepted=counts.get("accepted"),
        sold_out=counts.get("soldOut"),
        already=counts.get("alreadyParticipated"),
        thresholds_ok=summary.get("thresholdsOk"),
        config=summary.get("config") or {},
        campaign_id=summary.get("campaignId"),
        # Open model only: k6 creates dropped_iterations when it first drops one (absent = 0).
        dropped=int(summary.get("droppedIterations")
                    or ((summary.get("metrics") or {}).get("dropped_iterations") or {}).get("values", {}).get("count")
                    or 0),
        vus_busy_max=summary.get("vusBusyMax"),
    )
    # Latency of the 201s alone (flash-sale.js asks k6 for that submetric; older summaries lack it).
    wins = ((summary.get("metrics") or {}).get(f"http_req_duration{{scenario:{sc},status:201}}") or {})
    row.update(win_p50=(wins.get("values") or {}).get("med"), win_p99=(wins.get("values") or {}).get("p(99)"))
    ob = (verify or {}).get("outbox") or {}
    row["events_published"] = ob.get("eventsPublished") if ob.get("available") else None
    row["verify"] = verify
    # CPU per request of the service and of k6 (scripts/bench.sh: /proc and bash's `time`).
    for key, field in (("service_us", "serviceSeconds"), ("k6_us", "k6Seconds")):
        secs = (cpu or {}).get(field)
        row[key] = secs / row["requests"] * 1e6 if secs and row["requests"] else None
    return row


def fmt(v: Any, digits: int = 1, suffix: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{suffix}"
    if isinstance(v, int):
        return f"{v:,}{suffix}"
    return f"{v}{suffix}"


def ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    return a / b


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except (OSError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "date": now_iso(),
    }


def check_lines(verify: dict | None, kind: str) -> list[str]:
    if verify is None:
        return [f"- {kind}: no verification results (the run did not get that far)"]
    out = []
    for c in verify.get("checks", []):
        mark = {"pass": "PASS", "fail": "FAIL", "unavailable": "N/A "}[c["status"]]
        out.append(f"- `{mark}` {kind} — {c['name']}: {c['detail']}")
    return out


def target_lines(rows: dict[str, dict]) -> list[str]:
    h, o, s = rows["health"], rows["outbox"], rows["sync"]
    ov = o.get("verify") or {}
    ob = ov.get("outbox") or {}
    camp = ov.get("campaign") or {}
    stock = (o.get("config") or {}).get("stock")

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    acc = camp.get("acceptedCount")
    lag = ob.get("lastPublishedAfterLastWinMs")
    share = ratio(o.get("rps"), h.get("rps"))
    p99x = ratio(o.get("p99"), h.get("p99"))
    cpux = ratio(o.get("service_us"), h.get("service_us"))
    items = [
        (f"outbox: exactly {fmt(stock)} accepted (API acceptedCount)", acc == stock if acc is not None else None,
         fmt(acc)),
        ("outbox: no 5xx", o.get("server_errors") == 0 if o.get("present") else None, fmt(o.get("server_errors"))),
        ("outbox: throughput ≥ 85 % of the ceiling's", share >= 0.85 if share is not None else None,
         fmt(share * 100 if share is not None else None, 1, " %")),
        ("outbox: p99 ≤ 1.5× the ceiling's", p99x <= 1.5 if p99x is not None else None,
         fmt(p99x, 2, "×") + f" ({fmt(o.get('p99'), 1, ' ms')} vs {fmt(h.get('p99'), 1, ' ms')})"),
        ("outbox: service CPU per request ≤ 1.5× per ceiling request", cpux <= 1.5 if cpux is not None else None,
         fmt(cpux, 2, "×") + f" ({fmt(o.get('service_us'), 1, ' µs')} vs {fmt(h.get('service_us'), 1, ' µs')}; "
         "the outbox run's requests are refusals but for the stock's wins)"),
        ("outbox: all events on Kafka ≤ 1 s after the last win", lag <= 1000 if lag is not None else None,
         fmt(lag, 0, " ms") + " (lastPublishedAt − last acceptedAt)"),
    ]
    out = ["| target (docs/design.md §10) | result | measured |", "|---|---|---|"]
    out += [f"| {name} | {verdict(ok)} | {measured} |" for name, ok, measured in items]
    return out


def build_markdown(rows: dict[str, dict], meta: dict, machine: dict) -> tuple[str, str]:
    h = rows["health"]
    header = ("| path | requests/s | p50 (ms) | p95 (ms) | p99 (ms) | error rate | 5xx | accepted "
              "| events published | % of /health/live |")
    table = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in PATHS:
        r = rows[kind]
        if not r.get("present"):
            why = "setup failed, see Correctness" if r.get("setup_error") else "no k6 summary"
            table.append(f"| {kind} | n/a ({why}) | | | | | | | | |")
            continue
        share = ratio(r.get("rps"), h.get("rps"))
        label = {"health": "`/health/live` (ceiling)", "outbox": "outbox", "sync": "sync"}[kind]
        table.append(
            f"| {label} | {fmt(r['rps'])} | {fmt(r['p50'], 2)} | {fmt(r['p95'], 2)} | {fmt(r['p99'], 2)} "
            f"| {fmt((r['error_rate'] or 0) * 100, 2, ' %')} | {fmt(r['server_errors'])} "
            f"| {'—' if kind == 'health' else fmt(r.get('accepted'))} "
            f"| {'—' if kind == 'health' else fmt(r.get('events_published'))} "
            f"| {fmt(share * 100 if share is not None else None, 1, ' %')} |"
        )
    o, s = rows["outbox"], rows["sync"]
    tx, p95x = ratio(o.get("rps"), s.get("rps")), ratio(s.get("p95"), o.get("p95"))
    ratios = (f"**Outbox vs sync:** throughput **{fmt(tx, 1, '×')}** (outbox ÷ sync requests/s), "
              f"p95 **{fmt(p95x, 1, '×')}** lower (sync p95 ÷ outbox p95).")
    table_text = "\n".join(table) + "\n\n" + ratios + "\n"
    if h.get("service_us") is not None:
        cpu = ["| CPU per request (µs, same run) | service | k6 | together |", "|---|---:|---:|---:|"]
        for kind in PATHS:
            r = rows[kind]
            if r.get("service_us") is not None and r.get("k6_us") is not None:
                cpu.append(f"| {kind} | {fmt(r['service_us'])} | {fmt(r['k6_us'])} "
                           f"| {fmt(r['service_us'] + r['k6_us'])} |")
        table_text += ("\n" + "\n".join(cpu) + "\n\nOn this machine the service and k6 share the cores: "
                       "a request's share of /health/live's throughput is about the ratio of the "
                       "\"together\" column, so the service's own part is its column alone.\n")

    cfg = o.get("config") or s.get("config") or h.get("config") or {}
    load = {"vus": cfg.get("vus"), "duration": cfg.get("duration"), "stock": cfg.get("stock")}
    off_target = any(load[k] is not None and str(load[k]) != str(TARGET_LOAD[k]) for k in load)
    ob = ((o.get("verify") or {}).get("outbox") or {})
    sb = ((s.get("verify") or {}).get("outbox") or {})

    lines = [
        "# firstcome benchmark: sync vs outbox",
        "",
        f"Generated {machine['date']} by `scripts/bench.sh` "
        "(numbers from the k6 summaries; correctness checked through the HTTP API afterwards).",
        "",
        "## Machine and load",
        "",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} RAM, {machine['os']}; "
        "service, MariaDB, Redis, the embedded Kafka broker and k6 all on this one machine",
        f"- load: {fmt(load['vus'])} VUs, {load['duration']} per run (constant-vus), stock {fmt(load['stock'])}, "
        f"user ids drawn from 1..{fmt(cfg.get('users'))}, {fmt((cfg.get('repeatShare') or 0) * 100, 0)} % of "
        "requests reuse a recent user id",
    ]
    for k in ("command", "binary", "commit", "k6"):
        if meta.get(k):
            lines.append(f"- {k}: `{meta[k]}`")
    if off_target:
        lines.append("- note: not the load of docs/design.md §10 (500 VUs, 30s, stock 1000); the targets below are "
                     "indicative only")
    lines += [
        "",
        "## Results",
        "",
        table_text,
        "![throughput and latency](report.svg)",
        "",
        "- requests/s: requests of the load scenario ÷ k6 test-run time; latencies are k6's "
        "`http_req_duration` of the scenario (setup() excluded)",
        "- error rate: share of responses other than 201/409 (flash sale) or 200 (health) — "
        "`http_req_failed`; 409 SOLD_OUT / ALREADY_PARTICIPATED are expected answers",
        "- accepted: 201s seen by k6; events published: outbox → the campaign's PUBLISHED outbox rows; "
        "sync → accepted minus `syncEventsLost`",
    ]
    for kind in ("outbox", "sync"):
        r = rows[kind]
        if r.get("present"):
            lines.append(f"- {kind}: campaign {r.get('campaign_id')}, {fmt(r.get('requests'))} requests: "
                         f"{fmt(r.get('accepted'))} × 201, {fmt(r.get('sold_out'))} × SOLD_OUT, "
                         f"{fmt(r.get('already'))} × ALREADY_PARTICIPATED, {fmt(r.get('errors'))} unexpected; "
                         f"k6 thresholds {'passed' if r.get('thresholds_ok') else 'FAILED'}")
    if ob.get("available"):
        drained = ob.get("drainedAfterK6EndS")
        first = " (already drained at the first poll)" if ob.get("alreadyDrainedAtFirstPoll") else ""
        lines.append(f"- outbox relay: pending reached 0 ≤ {fmt(drained, 2)} s after k6 ended{first}; "
                     f"lastPublishedAt {ob.get('lastPublishedAt')}; last publish "
                     f"{fmt(ob.get('lastPublishedAfterLastWinMs'), 0)} ms after the last win")
    if sb.get("available"):
        lines.append(f"- sync: `syncEventsLost` during the run: {fmt(sb.get('syncEventsLost'))}")
    lines += ["", "## Targets", ""] + target_lines(rows)
    lines += ["", "## Correctness (through the API)", ""]
    for kind in ("outbox", "sync"):
        lines += check_lines(rows[kind].get("verify"), kind)
    lines += ["", "Reproduce: `scripts/bench.sh` (see k6/README.md).", ""]
    return "\n".join(lines), table_text


# ---------------------------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------------------------


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


COLORS = {"health": "#9aa5b1", "outbox": "#2f9e44", "sync": "#e03131"}


def nice_step(v: float) -> float:
    """A round grid step (1, 2, 2.5 or 5 × 10^k) giving at most five steps up to v."""
    if v <= 0:
        return 1.0
    raw = v / 5
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def load_label(rows: dict[str, dict]) -> str:
    cfg = next((rows[k].get("config") for k in ("outbox", "sync", "health") if rows[k].get("config")), {})
    label = f"{cfg.get('vus', '?')} VUs × {cfg.get('duration', '?')}"
    return label + (f", stock {cfg['stock']:,}" if isinstance(cfg.get("stock"), int) else "")


def build_svg(rows: dict[str, dict], machine: dict) -> str:
    W, H = 960, 460
    top, bottom = 70, 380  # plot area y range
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{W / 2}" y="26" text-anchor="middle" font-size="18" font-weight="bold">'
        "firstcome: sync vs outbox</text>",
        f'<text x="{W / 2}" y="46" text-anchor="middle" fill="#555">'
        f"{esc(load_label(rows))} · {esc(str(machine['nproc']))} CPUs, {esc(machine['cpu'])} · "
        f"{esc(machine['date'])}</text>",
    ]
    tx = ratio(rows["outbox"].get("rps"), rows["sync"].get("rps"))
    p95x = ratio(rows["sync"].get("p95"), rows["outbox"].get("p95"))
    parts.append(f'<text x="{W / 2}" y="{H - 16}" text-anchor="middle" fill="#333">'
                 f"outbox vs sync: {esc(fmt(tx, 1, '×'))} the throughput, "
                 f"{esc(fmt(p95x, 1, '×'))} lower p95</text>")

    # Left panel: throughput, linear scale.
    x0, x1 = 80, 430
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{top - 6}" text-anchor="middle" font-weight="bold">'
                 "Throughput (requests/s, higher is better)</text>")
    vals = [(k, rows[k].get("rps")) for k in PATHS]
    biggest = max([v for _, v in vals if v] or [1])
    step = nice_step(biggest)
    steps = max(1, math.ceil(biggest / step))
    vmax = step * steps
    for i in range(steps + 1):
        v = step * i
        y = bottom - (bottom - top - 20) * i / steps
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{v:,.0f}</text>')
    slot = (x1 - x0) / len(vals)
    for i, (k, v) in enumerate(vals):
        bx = x0 + slot * i + slot * 0.2
        bw = slot * 0.6
        label = {"health": "/health/live", "outbox": "outbox", "sync": "sync"}[k]
        parts.append(f'<text x="{bx + bw / 2:.1f}" y="{bottom + 18}" text-anchor="middle">{esc(label)}</text>')
        if not v:
            parts.append(f'<text x="{bx + bw / 2:.1f}" y="{bottom - 6}" text-anchor="middle" fill="#999">n/a</text>')
            continue
        h = (bottom - top - 20) * v / vmax
        parts.append(f'<rect x="{bx:.1f}" y="{bottom - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                     f'fill="{COLORS[k]}"/>')
        parts.append(f'<text x="{bx + bw / 2:.1f}" y="{bottom - h - 6:.1f}" text-anchor="middle" '
                     f'font-weight="bold">{v:,.0f}</text>')
    parts.append(f'<line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" stroke="#333"/>')

    # Right panel: p95/p99 latency, log scale (sync can be orders of magnitude slower).
    x0, x1 = 560, 920
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{top - 6}" text-anchor="middle" font-weight="bold">'
                 "Latency (ms, log scale, lower is better)</text>")
    lat = [(k, q, rows[k].get(q)) for k in ("outbox", "sync") for q in ("p95", "p99")]
    present = [v for _, _, v in lat if v and v > 0]
    # One decade below the smallest value, so even the shortest bar is clearly visible.
    lo = 10 ** (math.floor(math.log10(min(present))) - 1) if present else 1.0
    hi = 10 ** math.ceil(math.log10(max(present))) if present else 1000.0
    if hi <= lo:
        hi = lo * 10
    span = math.log10(hi) - math.log10(lo)

    def ly(v: float) -> float:
        return bottom - (bottom - top - 20) * (math.log10(v) - math.log10(lo)) / span

    d = lo
    for _ in range(12):  # one gridline per decade, bounded
        if d > hi * 1.0001:
            break
        y = ly(d)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        tick = f"{d:,.0f}" if d >= 1 else f"{d:g}"
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{tick}</text>')
        d *= 10
    group = (x1 - x0) / 2
    for gi, k in enumerate(("outbox", "sync")):
        gx = x0 + group * gi
        parts.append(f'<text x="{gx + group / 2:.1f}" y="{bottom + 18}" text-anchor="middle">{k}</text>')
        for qi, q in enumerate(("p95", "p99")):
            v = rows[k].get(q)
            bw = group * 0.3
            bx = gx + group * 0.15 + qi * (bw + group * 0.1)
            parts.append(f'<text x="{bx + bw / 2:.1f}" y="{bottom + 34}" text-anchor="middle" fill="#555" '
                         f'font-size="11">{q}</text>')
            if not v or v <= 0:
                parts.append(f'<text x="{bx + bw / 2:.1f}" y="{bottom - 6}" text-anchor="middle" '
                             'fill="#999">n/a</text>')
                continue
            y = ly(max(v, lo))
            opacity = "1" if q == "p95" else "0.6"
            parts.append(f'<rect x="{bx:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bottom - y:.1f}" '
                         f'fill="{COLORS[k]}" fill-opacity="{opacity}"/>')
            parts.append(f'<text x="{bx + bw / 2:.1f}" y="{y - 6:.1f}" text-anchor="middle" '
                         f'font-weight="bold">{v:,.1f}</text>')
    parts.append(f'<line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def cmd_report(args: argparse.Namespace) -> int:
    d = Path(args.results_dir)
    meta = dict(kv.split("=", 1) for kv in args.meta if "=" in kv)
    summaries = {k: load_json(d / f"{k}.json") for k in PATHS}
    rows = {k: row_for(k, summaries[k], load_json(d / f"verify-{k}.json"), load_json(d / f"cpu-{k}.json"))
            for k in PATHS}
    machine = machine_info()
    # The run's date, not the rendering's: the newest k6 summary.
    stamps = [str(s["generatedAt"]) for s in summaries.values() if s and s.get("generatedAt")]
    if stamps:
        machine["date"] = max(stamps)
    md, table = build_markdown(rows, meta, machine)
    svg = build_svg(rows, machine)
    (d / "report.md").write_text(md)
    (d / "report.svg").write_text(svg)
    if args.copy_md:
        shutil.copyfile(d / "report.md", args.copy_md)
    if args.copy_svg:
        shutil.copyfile(d / "report.svg", args.copy_svg)
    print(table)
    return 0


# ---------------------------------------------------------------------------------------------
# rates: sync vs outbox at equal offered load (open model, `scripts/bench.sh rates`)
# ---------------------------------------------------------------------------------------------

RATE_KINDS = ("outbox", "sync")  # always run; "health" joins them with RATES_HEALTH=1
KIND_LABELS = {"health": "`/health/live`", "outbox": "outbox", "sync": "sync"}


def parse_rates(text: str) -> list[int]:
    """ "1000 2000,4000" → [1000, 2000, 4000] (sorted, unique); raises ValueError otherwise."""
    rates = sorted({int(t) for t in text.replace(",", " ").split()})
    if not rates or rates[0] < 1:
        raise ValueError(f"expected positive whole requests/s, got {text!r}")
    return rates


def found_rates(d: Path) -> list[int]:
    """The rates with a k6 summary in d (when bench.sh did not say which it ran)."""
    rates = set()
    for f in d.glob("*-*.json"):
        kind, _, rate = f.stem.partition("-")
        if kind in ("health",) + RATE_KINDS and rate.isdigit():
            rates.add(int(rate))
    return sorted(rates)


def checks_verdict(kind: str, verify: dict | None) -> tuple[str, list[dict]]:
    """One word for a run's API checks, and the checks that did not pass."""
    if kind == "health":
        return "—", []
    if verify is None:
        return "not run", []
    items = verify.get("checks") or []
    bad = [c for c in items if c.get("status") != "pass"]
    if any(c.get("status") == "fail" for c in bad):
        return f"FAIL ({len(bad)} of {len(items)})", bad
    if bad:
        return f"n/a ({len(bad)} of {len(items)} unavailable)", bad
    return f"PASS ({len(items)})", []


def rates_load(rows: dict[tuple[str, int], dict]) -> dict:
    return next((r["config"] for r in rows.values() if r.get("config")), {})


def build_rates_markdown(rows: dict[tuple[str, int], dict], kinds: tuple[str, ...], rates: list[int],
                         meta: dict, machine: dict) -> tuple[str, str]:
    table = [
        "| offered (req/s) | path | achieved (req/s) | of offered | p50 (ms) | p95 (ms) | p99 (ms) "
        "| wins p99 (ms) | dropped iterations | errors | busy VUs (peak) | API checks |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rate in rates:
        for kind in kinds:
            r = rows[(kind, rate)]
            verdict, _ = checks_verdict(kind, r.get("verify"))
            if not r.get("present"):
                why = "setup failed" if r.get("setup_error") else "no k6 summary"
                table.append(f"| {rate:,} | {KIND_LABELS[kind]} | n/a ({why}) | | | | | | | | | {verdict} |")
                continue
            share = ratio(r.get("rps"), rate)
            table.append(
                f"| {rate:,} | {KIND_LABELS[kind]} | {fmt(r['rps'])} | {fmt(share * 100 if share is not None else None, 1, ' %')} "
                f"| {fmt(r['p50'], 2)} | {fmt(r['p95'], 2)} | {fmt(r['p99'], 2)} "
                f"| {'—' if kind == 'health' else fmt(r.get('win_p99'), 2)} | {fmt(r['dropped'])} "
                f"| {fmt((r['error_rate'] or 0) * 100, 2, ' %')} | {fmt(r.get('vus_busy_max'))} | {verdict} |"
            )
    ratios = [
        "| offered (req/s) | outbox ÷ sync throughput | sync p95 ÷ outbox p95 | sync p99 ÷ outbox p99 |",
        "|---:|---:|---:|---:|",
    ]
    for rate in rates:
        o, s = rows[("outbox", rate)], rows[("sync", rate)]
        ratios.append(f"| {rate:,} | {fmt(ratio(o.get('rps'), s.get('rps')), 1, '×')} "
                      f"| {fmt(ratio(s.get('p95'), o.get('p95')), 1, '×')} "
                      f"| {fmt(ratio(s.get('p99'), o.get('p99')), 1, '×')} |")
    table_text = "\n".join(table) + "\n\n" + "\n".join(ratios) + "\n"

    cfg = rates_load(rows)
    lines = [
        "# firstcome benchmark: sync vs outbox at equal offered load",
        "",
        f"Generated {machine['date']} by `scripts/bench.sh rates` "
        "(numbers from the k6 summaries; correctness checked through the HTTP API after every run). "
        "The closed-model comparison (equal VUs) is in [REPORT.md](REPORT.md).",
        "",
        "## Machine and load",
        "",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} RAM, {machine['os']}; "
        "service, MariaDB, Redis, the embedded Kafka broker and k6 all on this one machine",
        f"- load: open model (k6 `constant-arrival-rate`), offered rates {', '.join(f'{r:,}' for r in rates)} "
        f"requests/s, {cfg.get('duration', '?')} per run, each run on a fresh campaign of stock "
        f"{fmt(cfg.get('stock'))}, outbox then sync at each rate; at most {fmt(cfg.get('maxVUs'))} VUs "
        f"({fmt(cfg.get('preAllocatedVUs'))} allocated before the start); user ids drawn from "
        f"1..{fmt(cfg.get('users'))}, {fmt((cfg.get('repeatShare') or 0) * 100, 0)} % of requests reuse a "
        "recent user id",
    ]
    for k in ("command", "binary", "commit", "k6"):
        if meta.get(k):
            lines.append(f"- {k}: `{meta[k]}`")
    lines += [
        "",
        "## Results",
        "",
        table_text,
        "![achieved throughput and latency vs offered rate](rates.svg)",
        "",
        "- offered: the arrival rate k6 was asked for; achieved: requests of the scenario ÷ k6 test-run "
        "time (as in REPORT.md; the run time includes setup() and the last answers' wait, so a path "
        "that keeps up reads slightly under the offered rate)",
        "- dropped iterations: requests k6 did not send because all its VUs were waiting for answers "
        "(the pool is capped at MAX_VUS). Dropped iterations mean the path (or k6 itself) is past its "
        "ceiling at that rate; its latencies then describe MAX_VUS users waiting in line, i.e. a closed "
        "model of that many users, not the offered rate",
        "- wins p99: the latency of the 201s alone. Only wins reach MySQL, and they are a small, "
        "rate-dependent share of a run (stock 1,000 in 30 s: 3 % of the requests at 1,000 requests/s, "
        "0.3 % at 12,000), so where they are more than 1 % they can set the overall p99 by themselves. "
        "Wins that arrive faster than MySQL commits them wait for a pooled connection; past "
        "DB_ACQUIRE_TIMEOUT_MS (2 s) the request gets 503 (errors column), its reservation is released "
        "and the unit goes to a later request",
        "- busy VUs (peak): the largest sample of k6's `vus` (VUs busy with a request, sampled about "
        "once a second); by Little's law about achieved × mean latency",
        "- errors: share of responses other than 201/409 (`http_req_failed`); latencies are k6's "
        "`http_req_duration` of the scenario (setup() excluded)",
        "- API checks: the checks of `bench_report.py verify` for that run's campaign "
        "(acceptedCount == stock, nobody twice, outbox drained / syncEventsLost, …)",
    ] + ([
        "- `/health/live` (RATES_HEALTH=1): the same offered rate against an endpoint that touches "
        "neither Redis nor MySQL; where it drops iterations too, the limit is k6 and the machine, not the path",
    ] if "health" in kinds else []) + [
        "",
        "## Runs",
        "",
    ]
    for rate in rates:
        for kind in kinds:
            r = rows[(kind, rate)]
            head = f"- {kind} @ {rate:,}/s:"
            if not r.get("present"):
                lines.append(f"{head} no numbers ({r.get('setup_error') or 'no k6 summary'})")
                continue
            if kind == "health":
                lines.append(f"{head} {fmt(r.get('requests'))} requests, {fmt(r.get('errors'))} unexpected, "
                             f"{fmt(r.get('server_errors'))} × 5xx")
                continue
            line = (f"{head} campaign {r.get('campaign_id')}, {fmt(r.get('requests'))} requests: "
                    f"{fmt(r.get('accepted'))} × 201, {fmt(r.get('sold_out'))} × SOLD_OUT, "
                    f"{fmt(r.get('already'))} × ALREADY_PARTICIPATED, {fmt(r.get('errors'))} unexpected, "
                    f"{fmt(r.get('server_errors'))} × 5xx; k6 thresholds "
                    f"{'passed' if r.get('thresholds_ok') else 'FAILED'}")
            ob = ((r.get("verify") or {}).get("outbox") or {})
            if kind == "outbox" and ob.get("available"):
                line += (f"; outbox drained ≤ {fmt(ob.get('drainedAfterK6EndS'), 2)} s after k6 ended, last "
                         f"publish {fmt(ob.get('lastPublishedAfterLastWinMs'), 0)} ms after the last win")
            if kind == "sync" and ob.get("available"):
                line += f"; syncEventsLost {fmt(ob.get('syncEventsLost'))}"
            lines.append(line)
    lines += ["", "## Correctness (through the API)", ""]
    for rate in rates:
        for kind in RATE_KINDS:
            verdict, bad = checks_verdict(kind, rows[(kind, rate)].get("verify"))
            lines.append(f"- {kind} @ {rate:,}/s: {verdict}")
            lines += [f"  - `{c.get('status', '?').upper()}` {c.get('name')}: {c.get('detail')}" for c in bad]
    lines += ["", "Reproduce: `scripts/bench.sh rates` (see k6/README.md).", ""]
    return "\n".join(lines), table_text


def build_rates_svg(rows: dict[tuple[str, int], dict], kinds: tuple[str, ...], rates: list[int],
                    machine: dict) -> str:
    W, H = 960, 460
    top, bottom = 70, 366  # plot area y range
    cfg = rates_load(rows)
    subtitle = (f"open model (constant-arrival-rate), {cfg.get('duration', '?')} per rate, stock "
                f"{fmt(cfg.get('stock'))}, ≤ {fmt(cfg.get('maxVUs'))} VUs · {machine['nproc']} CPUs, "
                f"{machine['cpu']} · {machine['date']}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{W / 2}" y="26" text-anchor="middle" font-size="18" font-weight="bold">'
        "firstcome: sync vs outbox at equal offered load</text>",
        f'<text x="{W / 2}" y="46" text-anchor="middle" fill="#555">{esc(subtitle)}</text>',
    ]
    best = {k: max([rows[(k, r)].get("rps") or 0 for r in rates] or [0]) for k in RATE_KINDS}
    parts.append(f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle" fill="#333">'
                 f"highest achieved: outbox {best['outbox']:,.0f} requests/s, sync {best['sync']:,.0f} "
                 "requests/s</text>")
    # Legend, one row: colour = path, line style = percentile, hollow marker = dropped iterations.
    solid, dashed = 'stroke-width="2.5"', 'stroke-width="1.5" stroke-dasharray="6,4" stroke-opacity="0.6"'
    legend: list[tuple[str, str, str]] = [(COLORS[k], solid, KIND_LABELS[k].strip("`")) for k in kinds]
    legend += [("#9aa5b1", 'stroke-width="1.5" stroke-dasharray="4,4"', "offered (left)"),
               ("#333", solid, "p99"), ("#333", dashed, "p95 (right)")]
    lx, ly = 40.0, H - 36
    for color, style, label in legend:
        parts.append(f'<line x1="{lx:.0f}" y1="{ly}" x2="{lx + 26:.0f}" y2="{ly}" stroke="{color}" {style}/>')
        parts.append(f'<text x="{lx + 32:.0f}" y="{ly + 4}">{esc(label)}</text>')
        lx += 32 + 7.2 * len(label) + 22  # ~7 px per character at 13 px
    parts.append(f'<circle cx="{lx + 5:.0f}" cy="{ly}" r="4.5" fill="#ffffff" stroke="#333" stroke-width="2"/>')
    parts.append(f'<text x="{lx + 16:.0f}" y="{ly + 4}">k6 dropped iterations (VU pool exhausted)</text>')
    if not rates:
        parts.append(f'<text x="{W / 2}" y="{(top + bottom) / 2}" text-anchor="middle" fill="#999">'
                     "no runs</text></svg>")
        return "\n".join(parts) + "\n"

    xstep = nice_step(max(rates))
    xmax = xstep * max(1, math.ceil(max(rates) / xstep))

    def x_axis(x0: float, x1: float) -> tuple[list[str], Any]:
        def px(v: float) -> float:
            return x0 + (x1 - x0) * v / xmax
        out = []
        for i in range(int(round(xmax / xstep)) + 1):
            v = xstep * i
            out.append(f'<line x1="{px(v):.1f}" y1="{top}" x2="{px(v):.1f}" y2="{bottom}" stroke="#f0f0f0"/>')
            out.append(f'<text x="{px(v):.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">{v:,.0f}</text>')
        out.append(f'<text x="{(x0 + x1) / 2}" y="{bottom + 34}" text-anchor="middle" fill="#333">'
                   "offered (requests/s)</text>")
        out.append(f'<line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" stroke="#333"/>')
        return out, px

    def series(px: Any, py: Any, kind: str, key: str, is_solid: bool) -> list[str]:
        pts = [(r, rows[(kind, r)].get(key), rows[(kind, r)].get("dropped") or 0) for r in rates]
        pts = [(r, v, dropped) for r, v, dropped in pts if isinstance(v, (int, float)) and v > 0]
        if not pts:
            return []
        out = [f'<polyline fill="none" stroke="{COLORS[kind]}" {solid if is_solid else dashed} points="'
               + " ".join(f"{px(r):.1f},{py(v):.1f}" for r, v, _ in pts) + '"/>']
        if is_solid:
            for r, v, dropped in pts:
                fill = "#ffffff" if dropped else COLORS[kind]
                out.append(f'<circle cx="{px(r):.1f}" cy="{py(v):.1f}" r="4.5" fill="{fill}" '
                           f'stroke="{COLORS[kind]}" stroke-width="2"><title>{esc(kind)} @ {r:,}/s: '
                           f'{v:,.1f}{", " + format(dropped, ",") + " dropped" if dropped else ""}</title></circle>')
        return out

    # Left panel: achieved vs offered, linear; the dashed diagonal is "achieved == offered".
    x0, x1 = 80, 430
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{top - 8}" text-anchor="middle" font-weight="bold">'
                 "Achieved throughput (requests/s, higher is better)</text>")
    biggest = max([xmax] + [rows[(k, r)].get("rps") or 0 for k in kinds for r in rates])
    ystep = nice_step(biggest)
    ymax = ystep * max(1, math.ceil(biggest / ystep))

    def py_lin(v: float) -> float:
        return bottom - (bottom - top - 10) * v / ymax

    for i in range(int(round(ymax / ystep)) + 1):
        v = ystep * i
        parts.append(f'<line x1="{x0}" y1="{py_lin(v):.1f}" x2="{x1}" y2="{py_lin(v):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{x0 - 6}" y="{py_lin(v) + 4:.1f}" text-anchor="end" fill="#555">{v:,.0f}</text>')
    axis, px = x_axis(x0, x1)
    parts += axis
    parts.append(f'<line x1="{px(0):.1f}" y1="{py_lin(0):.1f}" x2="{px(xmax):.1f}" y2="{py_lin(xmax):.1f}" '
                 'stroke="#9aa5b1" stroke-width="1.5" stroke-dasharray="4,4"/>')
    for kind in kinds:
        parts += series(px, py_lin, kind, "rps", True)

    # Right panel: p99 (solid) and p95 (dashed) vs offered, log scale (sync is far slower).
    x0, x1 = 560, 920
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{top - 8}" text-anchor="middle" font-weight="bold">'
                 "Latency (ms, log scale, lower is better)</text>")
    present = [v for k in kinds for r in rates for q in ("p95", "p99")
               if isinstance(v := rows[(k, r)].get(q), (int, float)) and v > 0]
    lo = 10 ** math.floor(math.log10(min(present))) if present else 1.0
    hi = 10 ** math.ceil(math.log10(max(present))) if present else 1000.0
    if hi <= lo:
        hi = lo * 10
    span = math.log10(hi) - math.log10(lo)

    def py_log(v: float) -> float:
        return bottom - (bottom - top - 10) * (math.log10(max(v, lo)) - math.log10(lo)) / span

    d = lo
    for _ in range(12):  # one gridline per decade, bounded
        if d > hi * 1.0001:
            break
        parts.append(f'<line x1="{x0}" y1="{py_log(d):.1f}" x2="{x1}" y2="{py_log(d):.1f}" stroke="#e5e5e5"/>')
        tick = f"{d:,.0f}" if d >= 1 else f"{d:g}"
        parts.append(f'<text x="{x0 - 6}" y="{py_log(d) + 4:.1f}" text-anchor="end" fill="#555">{tick}</text>')
        d *= 10
    axis, px = x_axis(x0, x1)
    parts += axis
    for kind in kinds:
        parts += series(px, py_log, kind, "p95", False)
        parts += series(px, py_log, kind, "p99", True)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def cmd_rates(args: argparse.Namespace) -> int:
    d = Path(args.results_dir)
    runs = d / "rates"
    try:
        rates = parse_rates(args.rates) if args.rates else found_rates(runs)
    except ValueError as e:
        print(f"bench_report.py rates: --rates: {e}", file=sys.stderr)
        return 2
    meta = dict(kv.split("=", 1) for kv in args.meta if "=" in kv)
    with_health = any((runs / f"health-{r}.json").exists() for r in rates)
    kinds = (("health",) if with_health else ()) + RATE_KINDS
    rows = {(k, r): row_for(k, load_json(runs / f"{k}-{r}.json"), load_json(runs / f"verify-{k}-{r}.json"))
            for r in rates for k in kinds}
    summaries = [load_json(runs / f"{k}-{r}.json") for r in rates for k in kinds]
    machine = machine_info()
    stamps = [str(s["generatedAt"]) for s in summaries if s and s.get("generatedAt")]
    if stamps:
        machine["date"] = max(stamps)  # the run's date, not the rendering's
    md, table = build_rates_markdown(rows, kinds, rates, meta, machine)
    (d / "rates.md").write_text(md)
    (d / "rates.svg").write_text(build_rates_svg(rows, kinds, rates, machine))
    if args.copy_md:
        shutil.copyfile(d / "rates.md", args.copy_md)
    if args.copy_svg:
        shutil.copyfile(d / "rates.svg", args.copy_svg)
    print(table)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("verify", help="check one flash-sale run through the API")
    v.add_argument("--base-url", required=True)
    v.add_argument("--path-kind", choices=("outbox", "sync"), required=True)
    v.add_argument("--summary", required=True, help="the run's k6 SUMMARY_FILE")
    v.add_argument("--stock", type=int, required=True)
    v.add_argument("--out", required=True)
    v.add_argument("--k6-ended-at", type=float, default=0.0, help="epoch seconds when k6 exited")
    v.add_argument("--outbox-wait", type=float, default=30.0, help="seconds to wait for pending == 0")
    v.add_argument("--baseline", help="an earlier verify JSON whose syncEventsLost is subtracted")
    v.set_defaults(func=cmd_verify)

    r = sub.add_parser("report", help="write report.md and report.svg")
    r.add_argument("--results-dir", required=True)
    r.add_argument("--copy-md")
    r.add_argument("--copy-svg")
    r.add_argument("--meta", action="append", default=[], help="key=value shown in the report")
    r.set_defaults(func=cmd_report)

    q = sub.add_parser("rates", help="write rates.md and rates.svg (equal offered load)")
    q.add_argument("--results-dir", required=True, help="holds rates/<path>-<rate>.json and verify-*.json")
    q.add_argument("--rates", help='the offered rates, e.g. "1000 2000 4000" (default: those found)')
    q.add_argument("--copy-md")
    q.add_argument("--copy-svg")
    q.add_argument("--meta", action="append", default=[], help="key=value shown in the report")
    q.set_defaults(func=cmd_rates)

    args = p.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
