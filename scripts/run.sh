#!/usr/bin/env bash
# Runs firstcome locally: installs/starts MariaDB and Redis (scripts/services.sh), then the
# service in release mode with its embedded Kafka broker. Swagger UI: http://127.0.0.1:8080/docs
# Any variable of docs/configuration.md can be set in the environment, e.g.
#   ADMIN_TOKEN=$(openssl rand -hex 32) scripts/run.sh
# Unset, the admin token and the waiting room's ADMISSION_SECRET are generated once and kept in
# .firstcome/ (readable by its owner only): every restart uses the same, so a console tab, a shell's
# T=… and the tokens of a waiting room handed out before a restart keep working. The token is
# printed at start; `rm -r .firstcome` makes new ones.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh

# kept <file>: prints the secret kept in .firstcome/<file>, generating it (32 random bytes, hex)
# the first time.
kept() {
  mkdir -p .firstcome
  chmod 700 .firstcome
  if [ ! -s ".firstcome/$1" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >".firstcome/$1")
  fi
  cat ".firstcome/$1"
}
if [ -z "${ADMIN_TOKEN:-}" ] && [ -z "${ADMIN_TOKENS:-}" ]; then
  ADMIN_TOKEN=$(kept admin-token)
  export ADMIN_TOKEN
  echo "Admin token (kept in .firstcome/admin-token): $ADMIN_TOKEN" >&2
fi
if [ -z "${ADMISSION_SECRET:-}" ]; then
  ADMISSION_SECRET=$(kept admission-secret)
  export ADMISSION_SECRET
fi
# A load test from this machine (k6, README "Benchmarks") is one client address: lift the
# per-client connection cap (docs/design.md §17) for it, unless one is set.
export HTTP_MAX_CONNECTIONS_PER_CLIENT=${HTTP_MAX_CONNECTIONS_PER_CLIENT:-1000000}
exec cargo run --release --locked --bin firstcome -- serve
