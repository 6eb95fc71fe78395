#!/usr/bin/env bash
# The API as others read it: checks the committed documents with tools other people wrote, and
# drives the running service through a client generated from the OpenAPI document.
#   1. openapi-spec-validator on openapi/openapi.yaml;
#   2. @asyncapi/parser on docs/asyncapi.yaml;
#   3. openapi-python-client generates a client, without a warning; every operation of the spec
#      must have its module;
#   4. the built binary (target/debug/firstcome, embedded Kafka, USER_AUTH=jwt) runs against the
#      test suite's servers, and scripts/api-check/scenario.py creates a campaign, joins it (with a
#      user token from `firstcome token`, and refused without one), reads it and waits for the
#      stats and rewards consumers, all through the generated client.
# scripts/test.sh runs it after `cargo test`, inside scripts/test-services.sh (which sets
# TEST_DATABASE_URL and TEST_REDIS_URL). The tools are installed once into target/api-check.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/api-check
LOG_TAG=api-check
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "$*"; exit 1; }

[ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ] ||
  die "TEST_DATABASE_URL and TEST_REDIS_URL are not set: run it through scripts/test.sh (or scripts/test-services.sh run scripts/api-check.sh)"
[ -x "$ROOT/target/debug/firstcome" ] || die "target/debug/firstcome is missing: build it first (cargo build)"

PY_TOOLS="openapi-spec-validator==0.9.0 openapi-python-client==0.29.1"
NODE_TOOLS="@asyncapi/parser@3.6.3"
mkdir -p "$WORK"
python_tools "$WORK/venv" "$PY_TOOLS"
if [ "$(cat "$WORK/node/tools" 2>/dev/null)" != "$NODE_TOOLS" ]; then
  log "installing $NODE_TOOLS into $WORK/node"
  rm -rf "$WORK/node"
  mkdir -p "$WORK/node"
  npm install --prefix "$WORK/node" --no-audit --no-fund --silent "$NODE_TOOLS"
  echo "$NODE_TOOLS" >"$WORK/node/tools"
fi

# 1 and 2: the documents.
"$WORK/venv/bin/openapi-spec-validator" "$ROOT/openapi/openapi.yaml"
cp "$ROOT/scripts/api-check/asyncapi.mjs" "$WORK/node/asyncapi.mjs"
node "$WORK/node/asyncapi.mjs" "$ROOT/docs/asyncapi.yaml"

# 3: a client, with a module for every operation, generated without a warning (a warning means
# a schema or a response the generator left out, e.g. an enum field wrapped in allOf).
printf 'post_hooks: []\n' >"$WORK/generator.yaml"
generator_log=$("$WORK/venv/bin/openapi-python-client" generate --path "$ROOT/openapi/openapi.yaml" \
  --output-path "$WORK/firstcome_client" --meta none --overwrite --config "$WORK/generator.yaml" 2>&1)
if grep -qi 'warning' <<<"$generator_log"; then
  printf '%s\n' "$generator_log" >&2
  die "openapi-python-client left parts of the spec out (above)"
fi
operations=$("$WORK/venv/bin/python" - "$ROOT/openapi/openapi.yaml" <<'PY'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
methods = {"get", "put", "post", "delete", "patch", "head", "options"}
print(sum(1 for item in spec["paths"].values() for m in item if m in methods))
PY
)
generated=$(find "$WORK/firstcome_client/api" -name '*.py' ! -name '__init__.py' | wc -l)
[ "$operations" -eq "$generated" ] ||
  die "the generated client has $generated endpoint modules for the spec's $operations operations"
log "the generated client covers all $operations operations"

# 4: the service, driven through the client.
suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
database=test_apicheck_$suffix
create_test_database "$database" || die "could not create the database $database"
port=$("$WORK/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')  # 32 random bytes: the admin-token rule
jwt_secret=apicheck-jwt-secret-$suffix-$suffix-$suffix
user=$(( (RANDOM << 15 | RANDOM) + 1 ))
user_token=$(JWT_SECRET=$jwt_secret "$ROOT/target/debug/firstcome" token --user "$user" --ttl 10m)
DATABASE_URL=$TEST_DATABASE_URL/$database REDIS_URL=$TEST_REDIS_URL REDIS_KEY_PREFIX="test:apicheck-$suffix:" \
  HTTP_ADDR=127.0.0.1:$port ADMIN_TOKEN=$token USER_AUTH=jwt JWT_SECRET=$jwt_secret RUST_LOG=warn \
  "$ROOT/target/debug/firstcome" serve >"$WORK/service.log" 2>&1 &
service=$!
trap 'kill "$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true' EXIT
ready() { "$WORK/venv/bin/python" -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$port/health/ready', timeout=2).status != 200)"; }
wait_for "the service on port $port" 60 ready ||
  die "the service did not become ready; the end of $WORK/service.log: $(tail -n 5 "$WORK/service.log")"
PYTHONPATH=$WORK "$WORK/venv/bin/python" "$ROOT/scripts/api-check/scenario.py" "http://127.0.0.1:$port" "$token" \
  "$user" "$user_token"
log "ok"
