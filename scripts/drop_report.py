"""The drop scenario's report (scripts/bench-drop.sh): k6's counts and MySQL's figures.

Reads <results>/summary.json (k6/drop.js) and the bench database: every unit sold (held or
confirmed equals the stock in every size), no user over the group's limit, and, per size, the
time from each return (an unpaid hold's expiry) to the next win of that size, the i-th return
matched with the i-th win committed after it. Exit 0 when every unit is sold, nobody is over the
limit, no request failed.
"""
import json
import subprocess
import sys

out, db, cores, cpu = sys.argv[1:5]
s = json.load(open(f"{out}/summary.json"))
ids = ",".join(str(c) for c in s["campaigns"])


def rows(sql):
    q = ["mariadb", "-N", "-B", db, "-e", sql]
    return [line.split("\t") for line in subprocess.run(q, check=True, capture_output=True, text=True).stdout.splitlines()]


held = {int(c): int(n) for c, n in rows(
    f"SELECT campaign_id, SUM(quantity) FROM participation WHERE campaign_id IN ({ids}) "
    "AND status IN ('HELD','CONFIRMED') GROUP BY campaign_id")}
over = int(rows(
    f"SELECT COUNT(*) FROM (SELECT user_id FROM participation WHERE campaign_id IN ({ids}) "
    "GROUP BY user_id HAVING SUM(quantity) > 1) o")[0][0])
lags = []
for c in s["campaigns"]:
    returns = [float(t) for (t,) in rows(
        f"SELECT UNIX_TIMESTAMP(hold_expires_at) FROM participation WHERE campaign_id = {c} "
        "AND status = 'EXPIRED' ORDER BY hold_expires_at")]
    won = [float(t) for (t,) in rows(
        f"SELECT UNIX_TIMESTAMP(created_at) FROM participation WHERE campaign_id = {c} ORDER BY created_at")]
    later = iter(won)
    for r in returns:
        nxt = next((w for w in later if w >= r), None)
        if nxt is not None:
            lags.append(nxt - r)
lags.sort()
pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")
stock = s["stock_per_size"]
print(f"## Drop: {s['users']:,} users, {s['sizes']} sizes of {stock} units, one per customer "
      f"({cores} cores, {cpu})\n")
print("| outcome | value |\n|---|---|")
for k, label in [("wins", "wins (k6)"), ("paid", "paid at once"), ("left_to_expire", "holds left to expire"),
                 ("waitlisted", "tickets told WAITLISTED"), ("offer_wins", "wins through an offer"),
                 ("group_refused", "joins refused GROUP_LIMIT_REACHED"), ("over_limit_wins", "wins over the limit (k6)"),
                 ("sold_out_joins", "joins refused SOLD_OUT"), ("expired_tickets", "tickets EXPIRED"),
                 ("rate_limited", "429 answers"), ("errors", "failed requests"), ("requests", "requests")]:
    print(f"| {label} | {s.get(k, 0):,} |")
print(f"| units held or confirmed, by size (MySQL) | {', '.join(str(held.get(c, 0)) for c in s['campaigns'])} |")
print(f"| users over the limit (MySQL) | {over} |")
print(f"| returns matched to a later win | {len(lags)} |")
print(f"| return → next win of the size: p50 / p95 / max | {pick(0.5):.1f} / {pick(0.95):.1f} / {pick(1.0):.1f} s |")
w = s.get("offer_to_win_seconds")
if w:
    print(f"| offer seen → win (client): mean / p95 / max | {w['avg']:.2f} / {w['p95']:.2f} / {w['max']:.2f} s |")
print(f"| k6 run | {s['duration_seconds']:.0f} s |")
ok = all(held.get(c, 0) == stock for c in s["campaigns"]) and over == 0 and s["errors"] == 0
print(f"\n{'PASS' if ok else 'FAIL'}: every unit sold, nobody over the limit, no failed request")
sys.exit(0 if ok else 1)
