# Shell functions the scripts share; sourced, never run. Each script sets LOG_TAG first.

log() { echo "[${LOG_TAG:-firstcome}] $*" >&2; }

wait_for() { # wait_for <what> <seconds> <command...>: polls the command every 0.1 s
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up within ${secs}s"; return 1
}

# A throwaway CA and a server certificate for 127.0.0.1 and localhost, in <dir> (ca.pem,
# server.pem, server.key), made with openssl. For local TLS only.
make_server_certificates() { # make_server_certificates <dir> <CA name>
  local dir=$1 name=$2
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
      -out ca.pem -days 3650 -subj "/CN=$name" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
      -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 3650 -extfile server.ext 2>/dev/null
    rm -f server.csr server.ext ca.srl
  )
}

# Fails, naming the cause, when something already listens on 127.0.0.1:<port>.
port_free() { # port_free <port> <for what>
  local port=$1 what=$2
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    local who=""
    command -v ss >/dev/null && who=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:.*' | head -n 1)
    log "port $port (for $what) is taken by another process${who:+: $who}; choose another with the variable shown in scripts/test-services.sh"
    return 1
  fi
}

# A Python venv in <dir> holding <tools> (pip requirements, space-separated): made once, made
# anew when the list changes (the list is kept in <dir>/tools).
python_tools() { # python_tools <dir> <tools>
  local dir=$1 tools=$2
  if [ "$(cat "$dir/tools" 2>/dev/null)" != "$tools" ]; then
    log "installing $tools into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    # shellcheck disable=SC2086
    "$dir/bin/pip" install -q $tools
    echo "$tools" >"$dir/tools"
  fi
}

# Creates the database <name> on the server of TEST_DATABASE_URL (mysql://user:password@host:port).
create_test_database() { # create_test_database <name>
  if [[ $TEST_DATABASE_URL =~ ^mysql://([^:]+):([^@]+)@([^:/]+):([0-9]+) ]]; then
    mariadb -h "${BASH_REMATCH[3]}" -P "${BASH_REMATCH[4]}" -u "${BASH_REMATCH[1]}" -p"${BASH_REMATCH[2]}" \
      -e "CREATE DATABASE $1"
  else
    log "TEST_DATABASE_URL is not of the form mysql://user:password@host:port"
    return 1
  fi
}

# Starts the built binary (target/debug/firstcome, embedded Kafka, USER_AUTH=none, a random
# ADMIN_TOKEN, logs in <work>/service.log) for a check of the test suite, on a database of its
# own on TEST_DATABASE_URL and a key prefix of its own on TEST_REDIS_URL, stopped when the
# script exits; waits until it is ready. Sets `port`, `token` and `service`.
start_check_service() { # start_check_service <work> <name>
  local work=$1 name=$2 suffix database
  suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  database=test_${name}_$suffix
  create_test_database "$database" || { log "could not create the database $database"; return 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  token=$name-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  DATABASE_URL=$TEST_DATABASE_URL/$database REDIS_URL=$TEST_REDIS_URL REDIS_KEY_PREFIX="test:$name-$suffix:" \
    HTTP_ADDR=127.0.0.1:$port ADMIN_TOKEN=$token USER_AUTH=none RUST_LOG=warn \
    "$(dirname "${BASH_SOURCE[0]}")/../target/debug/firstcome" serve >"$work/service.log" 2>&1 &
  service=$!
  # shellcheck disable=SC2064 # the pid now, not at exit
  trap "kill $service 2>/dev/null || true; wait $service 2>/dev/null || true" EXIT
  local url="http://127.0.0.1:$port/health/ready"
  # shellcheck disable=SC2317 # called by wait_for
  service_ready() { python3 -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('$1', timeout=2).status != 200)" 2>/dev/null; }
  wait_for "the service on port $port" 60 service_ready "$url" || {
    log "the service did not become ready; the end of $work/service.log: $(tail -n 5 "$work/service.log")"
    return 1
  }
}

# A benchmark's database alone: BENCH_DB (default <db>, letters, digits and _ only) exported, and
# MariaDB and Redis started by scripts/services.sh with that database granted to the service's user.
bench_db() { # bench_db <default database>
  export BENCH_DB=${BENCH_DB:-$1}
  case $BENCH_DB in '' | *[!A-Za-z0-9_]*) log "BENCH_DB=$BENCH_DB: letters, digits and _ only"; return 1 ;; esac
  DB_NAME=$BENCH_DB "$ROOT/scripts/services.sh"
}

# What a benchmark of the release build needs before its Python part runs: BENCH_DB (default
# <db>, letters, digits and _ only, granted to the service's user by scripts/services.sh, which
# starts MariaDB and Redis), FIRSTCOME_BIN (target/release/firstcome, built when missing) and an
# ADMIN_TOKEN (generated when unset); all exported.
bench_setup() { # bench_setup <default database>
  bench_db "$1" || return 1
  export FIRSTCOME_BIN=${FIRSTCOME_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/firstcome}
  if [ ! -x "$FIRSTCOME_BIN" ]; then
    log "building firstcome (release)"
    (cd "$ROOT" && cargo build --release --locked --bin firstcome)
  fi
  export ADMIN_TOKEN=${ADMIN_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
}
