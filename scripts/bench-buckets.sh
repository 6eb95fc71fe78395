#!/usr/bin/env bash
# One big campaign bucketed against the same campaign unbucketed (docs/design.md §21), same
# machine, same run: PAIRS pairs (default 3), each one run of scripts/bench-cpu-per-win.sh per
# variant, in alternating order (the second of a pair meets a warmer machine), every request a
# distinct user who wins (WINS of them from a campaign of STOCK units, so buckets refill from the
# pool as they would in a big sale). Prints, per run and as min–max, wins per second, the
# service's and MariaDB's CPU per win, and Redis commands per win, each pair's ratios
# bucketed / unbucketed and their median (this VM's CPU per win swings more between runs than
# the ratio sought: read the median of several pairs), and what creating each campaign cost
# (done before the load, outside the figures: a bucketed campaign's creation is a one-off).
#
#   scripts/bench-buckets.sh                         3 pairs, 50,000 wins, stock 1,000,000, 64 buckets
#   PAIRS=5 BUCKETS=16 WINS=100000 scripts/bench-buckets.sh
#
# Settings: PAIRS (3), BUCKETS (64), WINS (50000), STOCK (1000000), VUS (200), and whatever
# scripts/bench-cpu-per-win.sh takes. Results in k6/results/buckets-<pair>-<variant>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PAIRS=${PAIRS:-3} BUCKETS_UNDER_TEST=${BUCKETS:-64}
export WINS=${WINS:-50000} STOCK=${STOCK:-1000000} VUS=${VUS:-200}
OUT=${RESULTS_DIR:-$ROOT/k6/results}
mkdir -p "$OUT"
for pair in $(seq 1 "$PAIRS"); do
  order="1 $BUCKETS_UNDER_TEST"
  [ $((pair % 2)) = 0 ] && order="$BUCKETS_UNDER_TEST 1"
  for buckets in $order; do
    echo "[bench-buckets] pair $pair/$PAIRS: $buckets bucket(s)" >&2
    RUNS=1 BUCKETS=$buckets RESULTS_DIR="$OUT/buckets-$pair-$buckets" \
      "$ROOT/scripts/bench-cpu-per-win.sh" >"$OUT/buckets-$pair-$buckets.log" 2>&1 \
      || { tail -30 "$OUT/buckets-$pair-$buckets.log" >&2; exit 1; }
  done
done
python3 - "$OUT" "$PAIRS" "$BUCKETS_UNDER_TEST" <<'PY'
import json, statistics, sys
from pathlib import Path
out, pairs, buckets = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
row = lambda pair, b: json.loads((out / f"buckets-{pair}-{b}" / "cpu-per-win-1.json").read_text())["row"]
cols = [("wins/s", "wins_per_s", "{:.0f}"), ("service µs/win", "service", "{:.0f}"),
        ("MariaDB µs/win", "mariadb", "{:.0f}"), ("both µs/win", "applied", "{:.0f}"),
        ("Redis commands/win", "redis_per_win", "{:.2f}")]
print(f"\n{pairs} pairs; one bucket against {buckets}; every request a distinct user who wins\n")
print("| pair | buckets | " + " | ".join(c[0] for c in cols) + " |")
print("|---|---:|" + "---:|" * len(cols))
ratios = {c[1]: [] for c in cols}
for p in range(1, pairs + 1):
    one, many = row(p, 1), row(p, buckets)
    for b, r in ((1, one), (buckets, many)):
        print(f"| {p} | {b} | " + " | ".join(f.format(r[k]) for _, k, f in cols) + " |")
    for _, k, _ in cols:
        ratios[k].append(many[k] / one[k] if one[k] else float("nan"))
span = lambda v: f"{min(v):.2f}–{max(v):.2f}" if f"{min(v):.2f}" != f"{max(v):.2f}" else f"{min(v):.2f}"
print(f"| ratio {buckets} / 1 | | " + " | ".join(span(ratios[k]) for _, k, _ in cols) + " |")
print(f"| median ratio | | " + " | ".join(f"{statistics.median(ratios[k]):.2f}" for _, k, _ in cols) + " |")
within = sum(1 for v in ratios["applied"] if v <= 1.1)
print(f"\nCPU per win (service + MariaDB) bucketed ÷ unbucketed ≤ 1.1 in {within} of {pairs} pairs.")
for b in (1, buckets):
    made = [row(p, b)["created_ms"] for p in range(1, pairs + 1)]
    cpu = [m["service"] + m["mariadb"] for m in made]
    print(f"Creating the campaign with {b} bucket(s), before the load and outside the figures: "
          f"{min(m['seconds'] for m in made):.0f}–{max(m['seconds'] for m in made):.0f} ms, "
          f"service + MariaDB CPU {min(cpu):.0f}–{max(cpu):.0f} ms.")
PY
