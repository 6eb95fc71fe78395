#!/usr/bin/env bash
# The test suite's own servers: a MariaDB, a Redis and a three-master Redis Cluster, each with a
# private data directory and private loopback ports, configured the way the tests need them
# (MariaDB with TLS from a throwaway CA, 1000 connections, a 10 s lock-wait timeout). Whatever
# else runs on the machine (a MariaDB on 3306, a Redis on 6379, with their users and data) is
# never touched. scripts/test.sh starts them before `cargo test` and stops them afterwards.
#
#   scripts/test-services.sh run CMD...  start them, run CMD with the variables the tests read
#                                        (TEST_DATABASE_URL, ...), stop them when it ends; exits
#                                        with CMD's status. One run at a time (a lock in the
#                                        directory); this is what scripts/test.sh does.
#   scripts/test-services.sh start       start them and print those variables as `export` lines
#                                        (for running single tests by hand)
#   scripts/test-services.sh stop        stop them
#
# Settings (environment): TEST_SERVICES_DIR (target/test-services), TEST_DB_PORT (23306),
# TEST_REDIS_PORT (26379), TEST_REDIS_CLUSTER_PORTS ("22001 22002 22003"). A cluster node also
# listens on its port + 10,000 (the cluster bus): the defaults keep those (32001–32003) below
# Linux's ephemeral range (32768 and up), where an outgoing connection (a load test's, say) could
# hold the port and stop the node from starting.
# The MariaDB data directory is initialised once (about 10 s) and reused; each start drops the
# test databases earlier runs left and empties the Redis servers.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${TEST_SERVICES_DIR:-$ROOT/target/test-services}
DB_PORT=${TEST_DB_PORT:-23306}
REDIS_PORT=${TEST_REDIS_PORT:-26379}
CLUSTER_PORTS=${TEST_REDIS_CLUSTER_PORTS:-22001 22002 22003}
DB_USER=firstcome
DB_PASSWORD=firstcome
ME=$(id -un)

LOG_TAG=test-services
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

MARIADB_DIR=$DIR/mariadb
SOCKET=$MARIADB_DIR/mysqld.sock
TLS_DIR=$DIR/tls

die() { log "$*"; exit 1; }

need() { # need <command> <package>
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ||
    die "$1 is missing: install $2 (scripts/services.sh install does)"
}

mariadbd_bin() { command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd; }

as_admin() { mariadb --no-defaults --socket="$SOCKET" -u "$ME" "$@"; }

# Stops the process of <pidfile> (SIGTERM, then waits up to 30 s for it to exit).
stop_pid() { # stop_pid <pidfile> <what>
  local pidfile=$1 what=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$what (pid $pid) did not stop; killing it"; kill -9 "$pid" || true; fi
  fi
  rm -f "$pidfile"
}

stop_all() {
  stop_pid "$MARIADB_DIR/mariadbd.pid" MariaDB
  stop_pid "$DIR/redis/redis.pid" Redis
  local port
  for port in $CLUSTER_PORTS; do stop_pid "$DIR/cluster/$port/redis.pid" "Redis Cluster node $port"; done
}

start_mariadb() {
  if [ ! -f "$MARIADB_DIR/initialised" ]; then
    log "initialising a private MariaDB data directory in $MARIADB_DIR (once)"
    rm -rf "$MARIADB_DIR"
    mkdir -p "$MARIADB_DIR"
    mariadb-install-db --no-defaults --datadir="$MARIADB_DIR/data" --user="$ME" \
      --auth-root-authentication-method=socket --skip-test-db >"$MARIADB_DIR/install.log" 2>&1 ||
      die "mariadb-install-db failed; see $MARIADB_DIR/install.log: $(tail -n 3 "$MARIADB_DIR/install.log")"
  fi
  [ -s "$TLS_DIR/server.pem" ] || make_server_certificates "$TLS_DIR" "firstcome test MariaDB CA"
  port_free "$DB_PORT" "the tests' MariaDB (TEST_DB_PORT)"
  log "starting MariaDB on 127.0.0.1:$DB_PORT"
  # --no-defaults: nothing from /etc/mysql (another server's datadir, socket or port) applies.
  # The thread pool as scripts/services.sh runs it, so the suite and the proof run check that.
  "$(mariadbd_bin)" --no-defaults --user="$ME" --datadir="$MARIADB_DIR/data" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --socket="$SOCKET" \
    --pid-file="$MARIADB_DIR/mariadbd.pid" --log-error="$MARIADB_DIR/error.log" \
    --max-connections=1000 --innodb-lock-wait-timeout=10 --thread-handling=pool-of-threads \
    --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" --ssl-key="$TLS_DIR/server.key" \
    >/dev/null 2>&1 9>&- &
  disown
  wait_for "MariaDB on port $DB_PORT" 60 mariadb-admin --no-defaults --socket="$SOCKET" -u "$ME" ping ||
    die "MariaDB did not start; the end of $MARIADB_DIR/error.log: $(tail -n 5 "$MARIADB_DIR/error.log" 2>/dev/null)"
  if [ ! -f "$MARIADB_DIR/initialised" ]; then
    as_admin <<SQL
CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
-- Each test creates its own database, named test_<uuid>.
GRANT ALL PRIVILEGES ON \`test\\_%\`.* TO '$DB_USER'@'localhost', '$DB_USER'@'127.0.0.1';
SQL
    touch "$MARIADB_DIR/initialised"
  fi
  # What earlier runs left (a run that was killed does not clean up).
  as_admin -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'test\\_%'" |
    while read -r db; do as_admin -e "DROP DATABASE \`$db\`"; done
}

start_redis() { # start_redis <dir> <port> [options...]
  local dir=$1 port=$2; shift 2
  port_free "$port" "the tests' Redis"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" 9>&-
  wait_for "Redis on port $port" 20 redis-cli -p "$port" ping ||
    die "Redis on port $port did not start; the end of $dir/redis.log: $(tail -n 5 "$dir/redis.log" 2>/dev/null)"
}

start_all() {
  need mariadbd mariadb-server
  need mariadb-install-db mariadb-server
  need redis-server redis-server
  need redis-cli redis-tools
  need openssl openssl
  mkdir -p "$DIR" 2>/dev/null && [ -w "$DIR" ] || die "$DIR is not writable (set TEST_SERVICES_DIR)"
  # Servers a killed run left behind are ours: stop them and start afresh.
  stop_all
  start_mariadb
  start_redis "$DIR/redis" "$REDIS_PORT"
  # The cluster nodes start empty each time (no state kept), so the cluster is created anew.
  rm -rf "$DIR/cluster"
  local port
  for port in $CLUSTER_PORTS; do
    port_free "$port" "a node of the tests' Redis Cluster"
    port_free $((port + 10000)) "the cluster bus of node $port"
  done
  REDIS_CLUSTER_PORTS="$CLUSTER_PORTS" REDIS_CLUSTER_DIR="$DIR/cluster" "$ROOT/scripts/redis-cluster.sh" 9>&-
  local cluster_url
  cluster_url=$(for port in $CLUSTER_PORTS; do printf 'redis://127.0.0.1:%s,' "$port"; done | sed 's/,$//')
  log "ready: MariaDB 127.0.0.1:$DB_PORT, Redis 127.0.0.1:$REDIS_PORT, Redis Cluster $CLUSTER_PORTS (data in $DIR)"
  cat <<ENV
export TEST_DATABASE_URL=mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$DB_PORT
export TEST_MYSQL_SSL_CA=$TLS_DIR/ca.pem
export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export TEST_REDIS_CLUSTER_URL=$cluster_url
ENV
}

run() {
  mkdir -p "$DIR" 2>/dev/null && [ -w "$DIR" ] || die "$DIR is not writable (set TEST_SERVICES_DIR)"
  # One suite at a time on these ports and this directory; the servers do not inherit the lock.
  exec 9>"$DIR/lock"
  flock -n 9 || die "another test run is using $DIR; wait for it, or give this one TEST_SERVICES_DIR and other ports"
  trap 'stop_all; log "stopped"' EXIT
  local env
  env=$(start_all)
  eval "$env"
  local status=0
  "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  run) shift; [ $# -gt 0 ] || die "usage: scripts/test-services.sh run CMD..."; run "$@" ;;
  start) start_all ;;
  stop) stop_all; log "stopped" ;;
  *) die "usage: scripts/test-services.sh run CMD... | start | stop" ;;
esac
