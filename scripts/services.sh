#!/usr/bin/env bash
# Installs (when missing) and starts the local services firstcome needs: MariaDB and Redis from
# Debian's packages, then creates the database and the TCP user. Idempotent: run it as often as you
# like. It also installs what building firstcome needs beyond Rust: OpenSSL's headers and
# pkg-config (librdkafka is built with TLS/SASL support) and the openssl command (the TLS tests
# make throwaway certificates with it). Kafka is not installed here: without KAFKA_BOOTSTRAP_SERVERS the service starts an embedded
# Kafka-protocol broker (librdkafka's mock cluster) in process.
#
# MariaDB also accepts TLS, with a throwaway CA and server certificate (for 127.0.0.1 and
# localhost) made here once, in DB_TLS_DIR: connect with
# `?ssl-mode=VERIFY_IDENTITY&ssl-ca=$DB_TLS_DIR/ca.pem` (TLS stays optional for clients). A MariaDB
# that was already running without it keeps running so; stop it (`mariadb-admin shutdown`) and
# run this again to add TLS.
#
# This is for running the service (scripts/run.sh, the benchmarks). The test suite does not use
# these servers: scripts/test.sh starts private ones (scripts/test-services.sh) and only asks this
# script to install the packages (`scripts/services.sh install`).
#
# Settings (environment): DB_NAME (firstcome), DB_USER (firstcome), DB_PASSWORD (firstcome),
# DB_PORT (3306), REDIS_PORT (6379), DB_TLS_DIR (/etc/mysql/firstcome-tls).
# Usage: scripts/services.sh [start|install|stop]   (start: install what is missing, then start; the
# default; stop: stop the MariaDB and Redis it started)
set -euo pipefail

DB_NAME=${DB_NAME:-firstcome}
DB_USER=${DB_USER:-firstcome}
DB_PASSWORD=${DB_PASSWORD:-firstcome}
DB_PORT=${DB_PORT:-3306}
REDIS_PORT=${REDIS_PORT:-6379}
DB_TLS_DIR=${DB_TLS_DIR:-/etc/mysql/firstcome-tls}

LOG_TAG=services
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=()
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
  # The test suite's API check (scripts/api-check.sh): Python tools in a venv, an npm package.
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  # The README's examples (and scripts/drop-check.sh, which runs its drop): curl and jq.
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian's packages"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# A CA and a server certificate for MariaDB, made once: throwaway, for local TLS only.
make_db_certificates() {
  [ -s "$DB_TLS_DIR/server.pem" ] && return 0
  log "making a throwaway CA and MariaDB server certificate in $DB_TLS_DIR"
  local tmp; tmp=$(mktemp -d)
  make_server_certificates "$tmp" "firstcome local MariaDB CA"
  sudo_if_needed mkdir -p "$DB_TLS_DIR"
  sudo_if_needed install -m 644 "$tmp/ca.pem" "$tmp/server.pem" "$DB_TLS_DIR/"
  sudo_if_needed install -m 640 -g mysql "$tmp/server.key" "$DB_TLS_DIR/"
  rm -rf "$tmp"
}

start_mariadb() {
  if sudo_if_needed mariadb-admin ping --silent >/dev/null 2>&1; then
    log "MariaDB already running"
  else
    make_db_certificates
    log "starting MariaDB on port $DB_PORT"
    sudo_if_needed mkdir -p /run/mysqld
    sudo_if_needed chown mysql:mysql /run/mysqld
    # A flash sale is many short transactions on one hot row; these settings are the
    # service's expectations for a local/CI database (see docs/operations.md, "Local services").
    # pool-of-threads: a few workers serve every connection's short statements instead of one
    # thread each being woken per statement: 6-7 us less of MariaDB's CPU per win
    # (docs/design.md §10); a statement waiting on a row lock hands its worker on.
    # Matched by its pid file, not its executable: the test suite's private mariadbd
    # (scripts/test-services.sh) runs the same binary and must not count as this server.
    sudo_if_needed start-stop-daemon --start --oknodo --background \
      --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd -- --user=mysql \
      --pid-file=/run/mysqld/mysqld.pid --port="$DB_PORT" --bind-address=127.0.0.1 \
      --max-connections=1000 --innodb-lock-wait-timeout=10 --thread-handling=pool-of-threads \
      --ssl-ca="$DB_TLS_DIR/ca.pem" --ssl-cert="$DB_TLS_DIR/server.pem" --ssl-key="$DB_TLS_DIR/server.key"
    wait_for MariaDB 60 sudo_if_needed mariadb-admin ping --silent
  fi
  sudo_if_needed mariadb <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost', '$DB_USER'@'127.0.0.1';
-- The test suite creates one database per test, named test_<uuid>.
GRANT ALL PRIVILEGES ON \`test\\_%\`.* TO '$DB_USER'@'localhost', '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

start_redis() {
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "Redis already running"
  else
    log "starting Redis on port $REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
      --logfile /tmp/firstcome-redis.log
    wait_for Redis 20 redis-cli -p "$REDIS_PORT" ping
  fi
}

# Stops the MariaDB and Redis that `start` started (by their pid file and port; the test
# suite's private servers are not touched). Data stays where it is for the next start.
stop_services() {
  if [ -s /run/mysqld/mysqld.pid ]; then
    log "stopping MariaDB"
    sudo_if_needed start-stop-daemon --stop --oknodo --retry 30 --pidfile /run/mysqld/mysqld.pid
  fi
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "stopping Redis on port $REDIS_PORT"
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}

case "${1:-start}" in
  install) install_missing; exit 0 ;;
  stop) stop_services; exit 0 ;;
  start) ;;
  *) log "usage: scripts/services.sh [start|install|stop]"; exit 2 ;;
esac
install_missing
start_mariadb
start_redis
log "ready: DATABASE_URL=mysql://$DB_USER:***@127.0.0.1:$DB_PORT/$DB_NAME REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
