#!/usr/bin/env bash
# What verifying users costs (USER_AUTH, docs/design.md §3): the flash sale of scripts/bench.sh
# (its health ceiling, outbox and sync runs, correctness checks) RUNS times (default 3) in each of
# each mode of MODES (default all four), interleaved so a drift in the machine's load hits every
# mode alike:
#   none       USER_AUTH=none (the default: nothing checked), no token sent;
#   none-sent  USER_AUTH=none, each join still sends an HS256 token: the control, what carrying
#              a token costs k6 and HTTP (k6 shares the two cores) without any verification;
#   hs256      USER_AUTH=jwt, HS256 with JWT_SECRET, tokens from `firstcome token --count`;
#   es256      USER_AUTH=jwt, ES256 with a JWKS file, tokens from scripts/mint-es256.py.
# Every join of a jwt run carries its user's token (k6's TOKENS_FILE: USERS tokens, minted before
# the run). Then one table: outbox requests/s, p50 and p99, share of /health/live, per run and
# min–max per mode. Settings: RUNS (3), USERS (200000), and those of scripts/bench.sh (VUS,
# DURATION, STOCK, PORT, FIRSTCOME_BIN, ...); results under RESULTS_DIR (k6/results/user-auth).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
MODES=${MODES:-none none-sent hs256 es256}
export USERS=${USERS:-200000}
RESULTS=${RESULTS_DIR:-$ROOT/k6/results/user-auth}
BIN=${FIRSTCOME_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome}
log() { echo "[bench-user-auth] $*" >&2; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked --bin firstcome)
export FIRSTCOME_BIN=$BIN COPY_REPORT=0
mkdir -p "$RESULTS"

secret=bench-user-auth-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
log "minting $USERS HS256 and $USERS ES256 tokens"
JWT_SECRET=$secret "$BIN" token --user 1 --count "$USERS" --ttl 2h >"$RESULTS/tokens-hs256.txt"
python3 "$ROOT/scripts/mint-es256.py" "$RESULTS/jwks.json" 1 "$USERS" 7200 >"$RESULTS/tokens-es256.txt"

for run in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    dir=$RESULTS/$mode-$run
    log "run $run/$RUNS, USER_AUTH $mode"
    case $mode in
      none) env -u USER_AUTH RESULTS_DIR="$dir" "$ROOT/scripts/bench.sh" >"$dir.log" 2>&1 || true ;;
      none-sent) env -u USER_AUTH TOKENS_FILE=$RESULTS/tokens-hs256.txt RESULTS_DIR="$dir" \
        "$ROOT/scripts/bench.sh" >"$dir.log" 2>&1 || true ;;
      hs256) USER_AUTH=jwt JWT_ALGORITHM=HS256 JWT_SECRET=$secret TOKENS_FILE=$RESULTS/tokens-hs256.txt \
        RESULTS_DIR="$dir" "$ROOT/scripts/bench.sh" >"$dir.log" 2>&1 || true ;;
      es256) USER_AUTH=jwt JWT_ALGORITHM=ES256 JWT_JWKS_FILE=$RESULTS/jwks.json JWT_AUDIENCE=firstcome-bench \
        TOKENS_FILE=$RESULTS/tokens-es256.txt RESULTS_DIR="$dir" "$ROOT/scripts/bench.sh" >"$dir.log" 2>&1 || true ;;
      *) log "unknown mode $mode (MODES: none none-sent hs256 es256)"; exit 2 ;;
    esac
  done
done

python3 - "$RESULTS" "$RUNS" $MODES <<'PY' | tee "$RESULTS/report.md"
import os, re, sys
results, runs, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
spread = {}
print("| mode | run | outbox requests/s | p50 (ms) | p99 (ms) | % of /health/live | sync requests/s | unexpected answers |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for mode in modes:
    for run in range(1, runs + 1):
        report = os.path.join(results, f"{mode}-{run}", "report.md")
        if not os.path.exists(report):
            print(f"| {mode} | {run} | (no report) | | | | | |")
            continue
        cells = {}
        unexpected = "?"
        for line in open(report):
            parts = [p.strip() for p in line.split("|")]
            if len(parts) > 10 and parts[1] in ("outbox", "sync", "`/health/live` (ceiling)"):
                cells[parts[1]] = parts
            found = re.search(r"([0-9][0-9,]*) unexpected", line)
            if line.startswith("- outbox: campaign") and found:
                unexpected = found.group(1)
        o, s = cells.get("outbox"), cells.get("sync")
        if not o:
            print(f"| {mode} | {run} | (no outbox row) | | | | | |")
            continue
        print(f"| {mode} | {run} | {o[2]} | {o[3]} | {o[5]} | {o[10]} | {s[2] if s else ''} | {unexpected} |")
        spread.setdefault(mode, []).append((float(o[2].replace(",", "")), float(o[5].replace(",", "")), float(o[10].rstrip(" %"))))
print()
print("| mode | outbox requests/s (min–max) | p99 ms (min–max) | % of /health/live (min–max) |")
print("|---|---:|---:|---:|")
for mode, values in spread.items():
    r, p, h = zip(*values)
    print(f"| {mode} | {min(r):,.0f}–{max(r):,.0f} | {min(p):.0f}–{max(p):.0f} | {min(h):.1f}–{max(h):.1f} % |")
PY
