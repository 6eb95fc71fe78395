#!/usr/bin/env bash
# The waiting room's bot check in a real browser: starts the built binary (target/debug/firstcome,
# BOT_CHECK=pow at a cost of 1,000 iterations, the page's origin allowed by CORS) against the test
# suite's servers, and runs scripts/bot-check-page.py: examples/waiting-room.html in headless
# Chromium solves the campaign's challenge, queues, is admitted and wins; a client without a
# solution gets no ticket. Run it inside scripts/test-services.sh (as scripts/console-check.sh,
# whose Chromium, driver and Selenium it uses):
#   scripts/test-services.sh run scripts/bot-check-page.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/bot-check-page
LOG_TAG=bot-check-page
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "$*"; exit 1; }

[ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ] ||
  die "TEST_DATABASE_URL and TEST_REDIS_URL are not set: run it as scripts/test-services.sh run scripts/bot-check-page.sh"
[ -x "$ROOT/target/debug/firstcome" ] || die "target/debug/firstcome is missing: build it first (cargo build)"
VENV=$ROOT/target/console-check/venv
[ -x "$VENV/bin/python" ] && command -v chromium >/dev/null 2>&1 ||
  die "Chromium and Selenium are missing: run scripts/console-check.sh first (it installs them)"

mkdir -p "$WORK"
page_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export BOT_CHECK=pow BOT_CHECK_COST=1000 CORS_ALLOWED_ORIGINS=http://127.0.0.1:$page_port
start_check_service "$WORK" botcheck || die "failed to start the service"

if ! SE_OFFLINE=true SE_AVOID_STATS=true \
  "$VENV/bin/python" "$ROOT/scripts/bot-check-page.py" "http://127.0.0.1:$port" "$token" "$page_port"; then
  die "failed; the end of $WORK/service.log: $(tail -n 10 "$WORK/service.log")"
fi
log "ok"
