#!/usr/bin/env bash
# The README's "Running a drop", run as written against a fresh service: the section's bash block
# is taken from README.md, given the service's admin token, address and binary (its only three
# placeholders, `T=<admin token>`, `API=http://127.0.0.1:8080/api/v1` and
# `target/release/firstcome`), and run with bash; each
# line it prints must match the README's next `#> ` line ("…" stands for any text: a time). A
# README whose commands stop working, or whose answers differ from what it says, fails the check.
# Starts the built binary (target/debug/firstcome, embedded Kafka, USER_AUTH=none, a random
# ADMIN_TOKEN) on a database of its own against the test suite's servers:
#   scripts/test-services.sh run scripts/drop-check.sh
# Needs curl and jq (scripts/services.sh installs them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/drop-check
LOG_TAG=drop-check
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "$*"; exit 1; }

[ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ] ||
  die "TEST_DATABASE_URL and TEST_REDIS_URL are not set: run it as scripts/test-services.sh run scripts/drop-check.sh"
[ -x "$ROOT/target/debug/firstcome" ] || die "target/debug/firstcome is missing: build it first (cargo build)"
for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: scripts/services.sh install puts it there"
done
mkdir -p "$WORK"

# The block: from the first ```bash fence after the section's heading to the fence that closes it.
awk '/^## Running a drop/ { section = 1 } section && /^```bash/ { block = 1; next }
     block && /^```/ { exit } block' "$ROOT/README.md" >"$WORK/readme-block.sh"
[ -s "$WORK/readme-block.sh" ] || die "README.md has no bash block under '## Running a drop'"
sed -n 's/^#> //p' "$WORK/readme-block.sh" >"$WORK/expected"
[ -s "$WORK/expected" ] || die "the README's drop block says nothing it prints (no '#> ' lines)"

# The service, on a database of its own.
start_check_service "$WORK" drop || die "failed to start the service"

# The README's three placeholders, each exactly once: the token, the address, and the binary
# `scripts/run.sh` builds (here the one under test).
for placeholder in '^T=<admin token>;' 'API=http://127\.0\.0\.1:8080/api/v1' 'target/release/firstcome '; do
  [ "$(grep -cE "$placeholder" "$WORK/readme-block.sh")" -eq 1 ] ||
    die "the README's drop block no longer has $placeholder once"
done
sed -e "s|^T=<admin token>;|T=$token;|" -e "s|API=http://127\.0\.0\.1:8080/api/v1|API=http://127.0.0.1:$port/api/v1|" \
  -e "s|target/release/firstcome |$ROOT/target/debug/firstcome |" \
  "$WORK/readme-block.sh" >"$WORK/run.sh"
log "running the README's drop against a fresh service (port $port)"
if ! (cd "$WORK" && timeout 120 bash "$WORK/run.sh" >"$WORK/output" 2>"$WORK/stderr"); then
  die "the README's drop failed: $(tail -n 5 "$WORK/stderr")"
fi

mapfile -t expected <"$WORK/expected"
mapfile -t printed <"$WORK/output"
[ ${#printed[@]} -eq ${#expected[@]} ] ||
  die "the README says ${#expected[@]} line(s), the drop printed ${#printed[@]}: $(tr '\n' ' ' <"$WORK/output")"
for i in "${!expected[@]}"; do
  pattern=${expected[$i]//…/*}
  # shellcheck disable=SC2053 # the README's line is a pattern on purpose ("…": any text)
  [[ ${printed[$i]} == $pattern ]] ||
    die "line $((i + 1)): the README says '${expected[$i]}', the drop printed '${printed[$i]}'"
  log "  ${printed[$i]}"
done
log "ok: the README's drop printed what it says (${#expected[@]} lines)"
