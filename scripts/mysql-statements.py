#!/usr/bin/env python3
"""Sums MariaDB's slow log by statement shape: count, total time, rows sent and examined.

Usage: scripts/mysql-statements.py <slow log> [top N] [per]

With `per` (say, the wins of the run), a column of calls and rows examined per that unit.

Literals are folded (strings to S, numbers to N, IN lists to N..), so the 50 claims of a drain
are one line. Written for `long_query_time = 0`, which logs every statement: see PROFILE=1 in
scripts/bench-relay.sh.
"""
import collections
import re
import sys


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    text = open(path, errors="replace").read()
    totals = collections.defaultdict(lambda: [0, 0.0, 0, 0])
    for entry in re.split(r"\n(?=# User@Host)", text):
        m = re.search(
            r"Query_time: ([\d.]+)\s+Lock_time: [\d.]+\s+Rows_sent: (\d+)\s+Rows_examined: (\d+)",
            entry,
        )
        if not m:
            continue
        sql = " ".join(
            line
            for line in entry.split("\n")
            if line and not line.startswith(("#", "SET timestamp", "use "))
        )
        sql = re.sub(r"'[^']*'", "S", sql)
        sql = re.sub(r"\b\d+\b", "N", sql)
        sql = re.sub(r"(N, ?)+N", "N..", sql)
        t = totals[sql[:140]]
        t[0] += 1
        t[1] += float(m.group(1))
        t[2] += int(m.group(2))
        t[3] += int(m.group(3))
    extra = " calls per | examined per |" if per else ""
    print(f"| calls | total s | rows sent | rows examined |{extra} statement |")
    print("|---:|---:|---:|---:|" + ("---:|---:|" if per else "") + "---|")
    for sql, (n, secs, sent, examined) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:top]:
        extra = f" {n / per:.3f} | {examined / per:.2f} |" if per else ""
        print(f"| {n} | {secs:.2f} | {sent} | {examined} |{extra} `{sql}` |")


if __name__ == "__main__":
    main()
