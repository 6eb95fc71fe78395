#!/usr/bin/env python3
"""What a bucketed batch's guarded decrement costs MariaDB, by the statement's shape
(docs/design.md §21, docs/benchmarks.md "Buckets"). Run it through
scripts/bench-bucket-statement.sh (it starts the benchmarks' MariaDB).

One session of the `mariadb` client as root: a table shaped as `campaign_bucket` with BUCKETS
rows, then each shape LOOPS times inside a stored procedure (one transaction a loop, prepared
statements executed by the server itself: no network, no client), ROUNDS rounds in turn. Shapes:

- `empty`: a transaction that does nothing (the loop's own cost);
- `one row`: the guarded decrement of one row (the unbucketed campaign's, or one bucket's);
- `plain N`: one `UPDATE` of N bucket rows by constants (the rows' own cost);
- `case N`: the service's statement for a batch over N buckets (`write::guard::buckets_statement`:
  five `CASE bucket …` over the list padded to its size class); its text is written out here and
  must follow that function's;
- `json N`: the same decrement as a join with `JSON_TABLE` of the batch's parts (an alternative
  measured on 2026-11-29 with 202e708, not used);
- `prepare case N` / `prepare json N`: preparing each statement (each pooled connection prepares
  each text once).

Prints µs per loop, min–max over the rounds.
"""
import os
import random
import re
import subprocess
import sys

BUCKETS = int(os.environ.get("BUCKETS", "64"))
ROWS = int(os.environ.get("ROWS", "40"))
LOOPS = int(os.environ.get("LOOPS", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
DB = os.environ.get("BENCH_DB", "firstcome_statement")
CAMPAIGN = 7


def size_at_least(n):
    """`db::sql::size_at_least`: the list sizes are 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, …"""
    size = 1
    while size < n:
        if size < 2:
            size += 1
        elif size & (size - 1) == 0:  # 2^k, then 3·2^(k-1)
            size += size // 2
        else:  # 3·2^(k-1), then 2^(k+1)
            size = size // 3 * 4
    return size


def case_statement(pad):
    case = "CASE bucket " + " ".join(["WHEN ? THEN ?"] * pad) + " END"
    return (f"UPDATE campaign_bucket SET remaining_stock = remaining_stock - {case}, "
            f"accepted_count = accepted_count + {case}, max_sequence = GREATEST(max_sequence, {case}) "
            f"WHERE campaign_id = ? AND bucket IN ({', '.join(['?'] * pad)}) AND paused = 0 AND closed = 0 "
            f"AND remaining_stock >= {case} AND gate_gen = {case}")


def case_values(padded):
    values = []
    for _ in range(3):  # minus, plus, highest
        for b in padded:
            values += [b, 1]
    values.append(CAMPAIGN)
    values += padded
    for of in (1, 0):  # enough, generation
        for b in padded:
            values += [b, of]
    return values


JSON_STATEMENT = (
    "UPDATE campaign_bucket b JOIN JSON_TABLE(?, ''$[*]'' COLUMNS (bk SMALLINT PATH ''$[0]'', "
    "minus BIGINT PATH ''$[1]'', plus BIGINT PATH ''$[2]'', seq BIGINT PATH ''$[3]'', gen BIGINT PATH ''$[4]'')) v "
    "ON b.campaign_id = ? AND b.bucket = v.bk SET b.remaining_stock = b.remaining_stock - v.minus, "
    "b.accepted_count = b.accepted_count + v.plus, b.max_sequence = GREATEST(b.max_sequence, v.seq) "
    "WHERE b.paused = 0 AND b.closed = 0 AND b.remaining_stock >= v.minus AND b.gate_gen = v.gen")


def session():
    buckets = sorted(random.Random(1).sample(range(BUCKETS), ROWS))
    pad = size_at_least(ROWS)
    padded = buckets + [buckets[-1]] * (pad - ROWS)
    values = case_values(padded)
    listed = ", ".join(map(str, buckets))
    out = [
        f"DROP DATABASE IF EXISTS `{DB}`; CREATE DATABASE `{DB}`; USE `{DB}`;",
        "CREATE TABLE campaign_bucket (campaign_id BIGINT NOT NULL, bucket SMALLINT NOT NULL, "
        "remaining_stock BIGINT NOT NULL, accepted_count BIGINT NOT NULL DEFAULT 0, "
        "max_sequence BIGINT NOT NULL DEFAULT 0, paused BOOLEAN NOT NULL DEFAULT FALSE, "
        "closed BOOLEAN NOT NULL DEFAULT FALSE, gate_gen BIGINT NOT NULL DEFAULT 0, "
        "PRIMARY KEY (campaign_id, bucket)) ENGINE=InnoDB;",
        "INSERT INTO campaign_bucket (campaign_id, bucket, remaining_stock) VALUES "
        + ", ".join(f"({CAMPAIGN}, {b}, 1000000000)" for b in range(BUCKETS)) + ";",
        f"SET @sql_case = '{case_statement(pad)}';",
        "PREPARE s_case FROM @sql_case;",
        f"SET @sql_json = '{JSON_STATEMENT}';",
        "PREPARE s_json FROM @sql_json;",
        "PREPARE s_one FROM 'UPDATE campaign_bucket SET remaining_stock = remaining_stock - ?, "
        "accepted_count = accepted_count + ?, max_sequence = GREATEST(max_sequence, ?) WHERE campaign_id = ? "
        "AND bucket = ? AND remaining_stock >= ? AND paused = 0 AND closed = 0 AND gate_gen = ?';",
        "SET @parts = '[" + ", ".join(f"[{b}, 1, 1, 1, 0]" for b in buckets) + f"]', @campaign = {CAMPAIGN};",
    ]
    out += [f"SET @v{i} = {v};" for i, v in enumerate(values)]
    using = ", ".join(f"@v{i}" for i in range(len(values)))
    shapes = [
        ("empty", "DO 1;"),
        ("one row", f"EXECUTE s_one USING 1, 1, 1, {CAMPAIGN}, {buckets[0]}, 1, 0;"),
        (f"plain {ROWS}", "UPDATE campaign_bucket SET remaining_stock = remaining_stock - 1, "
         "accepted_count = accepted_count + 1, max_sequence = GREATEST(max_sequence, 1) "
         f"WHERE campaign_id = {CAMPAIGN} AND bucket IN ({listed}) AND paused = 0 AND closed = 0 "
         "AND remaining_stock >= 1 AND gate_gen = 0;"),
        (f"case {ROWS} (padded to {pad})", f"EXECUTE s_case USING {using};"),
        (f"json {ROWS}", "EXECUTE s_json USING @parts, @campaign;"),
        (f"prepare case {ROWS}", "PREPARE s_x FROM @sql_case;"),
        (f"prepare json {ROWS}", "PREPARE s_y FROM @sql_json;"),
    ]
    out.append("DELIMITER //")
    for n, (_, body) in enumerate(shapes):
        wrapped = body if body.startswith("PREPARE") else f"START TRANSACTION; {body} COMMIT;"
        out.append(f"CREATE PROCEDURE shape_{n}() BEGIN DECLARE i INT DEFAULT 0; "
                   f"WHILE i < {LOOPS} DO {wrapped} SET i = i + 1; END WHILE; END //")
    out.append("DELIMITER ;")
    for r in range(ROUNDS):
        for n in range(len(shapes)):
            out.append(f"SET @t = NOW(6); CALL shape_{n}(); "
                       f"SELECT 'shape', {r}, {n}, TIMESTAMPDIFF(MICROSECOND, @t, NOW(6)) / {LOOPS};")
    out.append(f"DROP DATABASE `{DB}`;")
    return shapes, "\n".join(out)


def main():
    shapes, text = session()
    cmd = ([] if os.geteuid() == 0 else ["sudo"]) + ["mariadb", "-N", "-B"]
    run = subprocess.run(cmd, input=text, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"mariadb failed: {run.stderr[-2000:]}")
    times = {}
    for line in run.stdout.splitlines():
        m = re.match(r"shape\t(\d+)\t(\d+)\t([\d.]+)", line)
        if m:
            times.setdefault(int(m.group(2)), []).append(float(m.group(3)))
    print(f"\nThe guarded decrement's shapes on MariaDB: {BUCKETS} bucket rows, batches over {ROWS} "
          f"of them, {LOOPS} loops a shape, {ROUNDS} rounds (µs a loop, min–max)\n")
    print("| shape | µs a loop |")
    print("|---|---:|")
    for n, (name, _) in enumerate(shapes):
        lo, hi = min(times[n]), max(times[n])
        print(f"| {name} | {lo:.0f}" + (f"–{hi:.0f}" if f"{lo:.0f}" != f"{hi:.0f}" else "") + " |")


if __name__ == "__main__":
    main()
