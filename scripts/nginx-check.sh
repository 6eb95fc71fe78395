#!/usr/bin/env bash
# The service behind Debian's nginx, configured as the README's worked example says (README
# "Exposing the service", docs/design.md §17), everything on loopback:
#   - nginx (`apt-get install nginx` when missing; the system's nginx service is never started)
#     runs privately from target/nginx-check/ with the README's nginx block, read from README.md
#     at run time, so that the example is what is tested. Changed for loopback only: the
#     upstream server is the service's port, `listen` a free loopback port without TLS, and the
#     upstream keepalive_timeout 2s (the README: 5s) to stay below this run's head deadline;
#   - the built binary (target/debug/firstcome, built when missing) on a free loopback port with
#     TRUSTED_PROXY_HEADER=x-forwarded-for, TRUSTED_PROXIES=127.0.0.1/32 (nginx's address on
#     loopback), RATE_LIMIT_IP_PER_SECOND=1, RATE_LIMIT_IP_BURST=3, and HTTP_HEADER_TIMEOUT_MS=3000
#     (the README: the default 10 s) so that idling up to the deadlines takes seconds; against the
#     test suite's MariaDB and Redis (a database of its own), with a random 32-byte ADMIN_TOKEN.
# Distinct clients are curl bound to distinct loopback addresses (127.0.0.2, 127.0.0.3, ...): nginx
# sees each as its own $remote_addr. The checks:
#   1. per real client: client A exhausts its per-IP burst (429) and client B, through the same
#      nginx, is still served: the buckets are the clients', not the proxy's;
#   2. a client's own X-Forwarded-For changes nothing: client C, writing a different forged line
#      on every call, is refused after its burst all the same; client D writing C's forged address
#      is served, and so is that address's own client; a peer not in TRUSTED_PROXIES that writes
#      the header directly to the service is keyed by its own address;
#   3. pooled upstream connections: one connection idle 1.8 s carries the next request (the same
#      connection, seen with ss) and nginx drops it at its 2 s keepalive_timeout, before the
#      service's 3 s head deadline; then 6 concurrent clients alternate joins (POST, which nginx
#      never retries) and reads with idles of 1.9–2.9 s between: not one may fail, nginx's error
#      log must stay empty and the service must never have closed a connection by its head
#      deadline (firstcome_connections_timed_out_total{reason="header"});
#   4. the counter-example: a second nginx server with the same block but keepalive_timeout 60s
#      (above the deadline) has its pooled connection cut by the service at 3 s (the counter
#      rises): a request nginx sends on it at that instant would fail. This also shows that the
#      zero of check 3 is a measurement.
# Runs inside scripts/test-services.sh (which sets TEST_DATABASE_URL and TEST_REDIS_URL), e.g. by
# scripts/test.sh; about 30 s. Logs and the generated nginx.conf stay in target/nginx-check/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/nginx-check
README=$ROOT/README.md
LOG_TAG=nginx-check
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
die() { log "FAILED: $*"; exit 1; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

RATE=1 BURST=3
HEAD_DEADLINE_MS=3000
POOL_TIMEOUT=2 # nginx's upstream keepalive_timeout, seconds: below the head deadline
CLIENTS=6

if [ -z "${TEST_DATABASE_URL:-}" ] || [ -z "${TEST_REDIS_URL:-}" ]; then
  die "TEST_DATABASE_URL and TEST_REDIS_URL are not set: run it through scripts/test.sh (or scripts/test-services.sh run scripts/nginx-check.sh)"
fi
[ -f "$README" ] || die "$README is missing"

# nginx, from Debian's packages when missing. The package's own start of the system service is
# refused through policy-rc.d (one is put in place for the install when the machine has none).
nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
policy=/usr/sbin/policy-rc.d
placed_policy=
if [ ! -x "$nginx_bin" ]; then
  if ! grep -q 'Candidate: [0-9]' <<<"$(apt-cache policy nginx 2>/dev/null)"; then
    log "apt-get update (nginx has no candidate)"
    sudo_if_needed apt-get update -qq
  fi
  if [ ! -e "$policy" ]; then
    placed_policy=1
    trap 'sudo_if_needed rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy" >/dev/null
    sudo_if_needed chmod 755 "$policy"
  fi
  log "installing nginx from Debian's packages"
  installed=$(sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx 2>&1) ||
    die "apt-get install nginx failed: $(tail -n 5 <<<"$installed")"
  if [ -n "$placed_policy" ]; then sudo_if_needed rm -f "$policy"; trap - EXIT; fi
  nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
  [ -x "$nginx_bin" ] || die "nginx is still missing after apt-get install nginx"
fi
command -v ss >/dev/null || die "ss is missing (Debian's iproute2, which nginx depends on)"
command -v curl >/dev/null || die "curl is missing"
if [ ! -x "$ROOT/target/debug/firstcome" ]; then
  log "building target/debug/firstcome"
  (cd "$ROOT" && cargo build --locked --bin firstcome)
fi

rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/temp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
svc_port=$(free_port)
front_port=$(free_port)
late_port=$(free_port)
while [ "$front_port" = "$svc_port" ]; do front_port=$(free_port); done
while [ "$late_port" = "$svc_port" ] || [ "$late_port" = "$front_port" ]; do late_port=$(free_port); done

# The README's example, adapted to loopback; each change must find its line exactly once.
example=$(awk '/^Behind nginx/ { found = 1 } found && /^```nginx/ { inside = 1; next }
               inside && /^```/ { exit } inside' "$README")
[ -n "$example" ] ||
  die "$README has no nginx example (a \`\`\`nginx block after \"Behind nginx\", section Exposing the service)"
substitute() { # substitute <text> <sed regex> <replacement>: the regex must match one line
  local count
  count=$(grep -c -E -- "$2" <<<"$1" || true)
  [ "$count" -eq 1 ] ||
    die "the README's nginx example has $count lines matching /$2/ (1 expected): update scripts/nginx-check.sh with it"
  sed -E "s~$2~$3~" <<<"$1"
}
adapt() { # adapt <listen port> <upstream keepalive_timeout> <upstream name> [text after it]
  local text=$example
  text=$(substitute "$text" '^( *)server 10\.0\.0\.5:8080;' "\\1server 127.0.0.1:$svc_port;")
  text=$(substitute "$text" '^( *)keepalive_timeout [0-9]+s;(.*)' "\\1keepalive_timeout $2;${4:-\\2}")
  text=$(substitute "$text" '^( *)listen 443 ssl;.*' "\\1listen 127.0.0.1:$1;")
  text=$(substitute "$text" '^upstream firstcome \{' "upstream $3 {")
  text=$(substitute "$text" '^( *)proxy_pass http://firstcome;' "\\1proxy_pass http://$3;")
  # With a comment of its own, the README's comment on the old value goes (its continuation too).
  if [ -n "${4:-}" ]; then text=$(sed -E '/^ *keepalive_timeout /{n;/^ *#/d}' <<<"$text"); fi
  echo "$text"
}
front_server=$(adapt "$front_port" "${POOL_TIMEOUT}s" firstcome)
late_server=$(adapt "$late_port" 60s firstcome_late "        # nginx-check: ABOVE the service's head deadline (check 4)")
cat >"$WORK/nginx.conf" <<CONF
# Generated by scripts/nginx-check.sh from the nginx example of $README.
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections 256; }
http {
    log_format check '\$remote_addr "\$http_x_forwarded_for" "\$request" \$status upstream=\$upstream_status \$request_time';
    access_log logs/access.log check;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

# The README's example: upstream keepalive_timeout ${POOL_TIMEOUT}s, below the service's head deadline.
$front_server

# The counter-example (check 4): the same, with keepalive_timeout above that deadline.
$late_server
}
CONF

# The service, on a database of its own.
suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
database=test_nginxcheck_$suffix
token=$(openssl rand -hex 32)
service=
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && { kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; }
  [ -n "$service" ] && { kill "$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true; }
  if [[ $TEST_DATABASE_URL =~ ^mysql://([^:]+):([^@]+)@([^:/]+):([0-9]+) ]]; then
    mariadb -h "${BASH_REMATCH[3]}" -P "${BASH_REMATCH[4]}" -u "${BASH_REMATCH[1]}" -p"${BASH_REMATCH[2]}" \
      -e "DROP DATABASE IF EXISTS $database" 2>/dev/null || true
  fi
}
trap cleanup EXIT
create_test_database "$database" || die "could not create the database $database"
DATABASE_URL=$TEST_DATABASE_URL/$database REDIS_URL=$TEST_REDIS_URL REDIS_KEY_PREFIX="test:nginxcheck-$suffix:" \
  HTTP_ADDR=127.0.0.1:$svc_port ADMIN_TOKEN=$token USER_AUTH=none RUST_LOG=warn \
  TRUSTED_PROXY_HEADER=x-forwarded-for TRUSTED_PROXIES=127.0.0.1/32 \
  RATE_LIMIT_IP_PER_SECOND=$RATE RATE_LIMIT_IP_BURST=$BURST HTTP_HEADER_TIMEOUT_MS=$HEAD_DEADLINE_MS \
  "$ROOT/target/debug/firstcome" serve >"$WORK/service.log" 2>&1 &
service=$!
"$nginx_bin" -p "$WORK" -c "$WORK/nginx.conf" -t >"$WORK/nginx-t.log" 2>&1 ||
  die "nginx refuses the configuration $WORK/nginx.conf: $(cat "$WORK/nginx-t.log")"
"$nginx_bin" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' >"$WORK/logs/nginx.out" 2>&1 &
nginx_pid=$!
direct=http://127.0.0.1:$svc_port
front=http://127.0.0.1:$front_port
late=http://127.0.0.1:$late_port
ready() { curl -sf --max-time 2 -o /dev/null "$direct/health/ready"; }
wait_for "the service on port $svc_port" 60 ready ||
  die "the service did not become ready; the end of $WORK/service.log: $(tail -n 5 "$WORK/service.log")"
nginx_up() { curl -sf --max-time 2 -o /dev/null "$front/health/live"; }
wait_for "nginx on port $front_port" 10 nginx_up ||
  die "nginx does not answer on port $front_port; $WORK/logs: $(cat "$WORK/logs/nginx.out" "$WORK/logs/error.log" 2>/dev/null)"
log "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*: //') on 127.0.0.1:$front_port in front of the service on 127.0.0.1:$svc_port"

# The HTTP status of one call from <source address> (000: no answer).
status() { # status <source address> <url> [curl options...]
  local src=$1 url=$2; shift 2
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 --interface "$src" "$@" "$url" || true
}
# The service's count of connections it closed by its head deadline (from /metrics, directly).
header_timeouts() {
  local body code
  for _ in 1 2 3; do
    body=$(curl -s --max-time 5 -w '\n%{http_code}' -H "Authorization: Bearer $token" "$direct/metrics" || true)
    code=${body##*$'\n'}
    if [ "$code" = 200 ]; then
      awk '/^firstcome_connections_timed_out_total\{reason="header"\}/ { print $2; found = 1 }
           END { if (!found) print "missing" }' <<<"$body"
      return
    fi
    sleep 1.1 # a 429 of the per-IP limit: a token comes back within a second
  done
  echo "unreadable($code)"
}
# The peer ports of the service's open connections: nginx's pooled upstream connections.
upstream_ports() { ss -Htn state established "( sport = :$svc_port )" | awk '{ sub(/.*:/, "", $NF); print $NF }' | sort -n | xargs; }

status_line=$(curl -s --max-time 10 -w '\n%{http_code}' -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name":"nginx check","totalStock":1000}' "$front/api/v1/campaigns")
[ "${status_line##*$'\n'}" = 201 ] || die "creating a campaign through nginx answered: $status_line"
campaign=$(sed -E -n '1s/.*"id":([0-9]+).*/\1/p' <<<"$status_line")
[ -n "$campaign" ] || die "no campaign id in: $status_line"
read_url=$front/api/v1/campaigns/$campaign

# Calls from <source> (with the curl options given) until one is refused 429, at most 8. Prints
# the statuses; returns 1 when none was refused.
until_refused() { # until_refused <source> <url> [curl options...]
  local codes="" code
  for _ in 1 2 3 4 5 6 7 8; do
    code=$(status "$@")
    codes="$codes $code"
    [ "$code" = 429 ] && { echo "$codes"; return 0; }
  done
  echo "$codes"; return 1
}

# 1. The buckets are per real client.
codes=$(until_refused 127.0.0.2 "$read_url") ||
  die "client A (127.0.0.2) was never refused through nginx (statuses:$codes): RATE_LIMIT_IP_BURST=$BURST is not applied"
[ "$(wc -w <<<"$codes")" -gt "$BURST" ] || die "client A was refused before its burst of $BURST (statuses:$codes)"
code=$(status 127.0.0.3 "$read_url")
[ "$code" = 200 ] ||
  die "client B (127.0.0.3) got $code right after client A (127.0.0.2) used its burst: the service keyed both by nginx's address, not by the clients' (X-Forwarded-For not read from TRUSTED_PROXIES?)"
log "ok: per real client: client A (127.0.0.2) refused after its burst (statuses:$codes), client B (127.0.0.3) through the same nginx served ($code)"

# 2. A client's own line changes nothing.
forged=("203.0.113.7" "203.0.113.8" "198.51.100.9, 127.0.0.1" "203.0.113.10:4711" "unknown" "192.0.2.1, 192.0.2.2")
codes=""
refused=
for line in "${forged[@]}" "203.0.113.11" "203.0.113.12"; do
  code=$(status 127.0.0.4 "$read_url" -H "X-Forwarded-For: $line")
  codes="$codes $code"
  [ "$code" = 429 ] && { refused=1; break; }
done
[ -n "$refused" ] ||
  die "client C (127.0.0.4), writing a new X-Forwarded-For on each call, was never refused (statuses:$codes): the service keyed it by what it wrote"
code=$(status 127.0.0.4 "$read_url" -H "X-Forwarded-For: 203.0.113.99" -H "X-Forwarded-For: 203.0.113.98")
[ "$code" = 429 ] || die "client C, writing two X-Forwarded-For lines of its own, got $code (429 expected: its bucket is empty)"
code=$(status 127.0.0.5 "$read_url" -H "X-Forwarded-For: 203.0.113.7")
[ "$code" = 200 ] ||
  die "client D (127.0.0.5), writing client C's forged 203.0.113.7, got $code: it shares a bucket with C"
code=$(status 127.0.0.1 "$direct/api/v1/campaigns/$campaign" -H "X-Forwarded-For: 203.0.113.7")
[ "$code" = 200 ] ||
  die "the client 203.0.113.7 (as nginx forwards it) got $code: client C's forged line drained its bucket"
codes2=$(until_refused 127.0.0.6 "$direct/api/v1/campaigns/$campaign" -H "X-Forwarded-For: 127.0.0.1") ||
  die "a peer outside TRUSTED_PROXIES (127.0.0.6) writing X-Forwarded-For to the service directly was never refused (statuses:$codes2): the header was believed"
log "ok: a client's own X-Forwarded-For ignored: client C (127.0.0.4), a new forged line each call, refused after its burst (statuses:$codes) and with two lines; client D writing C's 203.0.113.7 served, and 203.0.113.7 itself; a peer outside TRUSTED_PROXIES writing the header directly refused after its burst"

# 3. Pooled upstream connections idling up to the deadline.
before=$(header_timeouts)
[[ $before =~ ^[0-9]+$ ]] || die "firstcome_connections_timed_out_total{reason=\"header\"} not read from /metrics: $before"
sleep $((POOL_TIMEOUT + 1)) # nginx's pool is empty: its connections of checks 1-2 are past their keepalive_timeout
[ -z "$(upstream_ports)" ] || die "nginx still holds connections to the service $((POOL_TIMEOUT + 1)) s after its last request: $(upstream_ports)"
code=$(status 127.0.0.20 "$read_url")
first=$(upstream_ports)
if [ "$code" != 200 ] || [ "$(wc -w <<<"$first")" -ne 1 ]; then
  die "one call through nginx: $code, pooled connections to the service: '$first' (200 and one expected)"
fi
sleep 1.8
code=$(status 127.0.0.20 "$read_url")
second=$(upstream_ports)
[ "$code" = 200 ] || die "a call over a pooled connection idle 1.8 s answered $code"
[ "$second" = "$first" ] ||
  die "after 1.8 s idle the call did not reuse nginx's pooled connection (peer port $first before, '$second' after): upstream keepalive is not in effect"
sleep 2.5
third=$(upstream_ports)
[ -z "$third" ] ||
  die "2.5 s idle (nginx keepalive_timeout ${POOL_TIMEOUT}s, service head deadline ${HEAD_DEADLINE_MS} ms): the pooled connection is still open ($third)"
code=$(status 127.0.0.20 "$read_url")
[ "$code" = 200 ] || die "the call after nginx dropped its pooled connection answered $code"
log "ok: one pooled connection (nginx's port $first) idle 1.8 s carried the next call; nginx dropped it by ${POOL_TIMEOUT} s, and the next call opened $(upstream_ports)"

idle_client() { # idle_client <n> <source address>: calls through nginx with idles between them
  local n=$1 src=$2 out=$WORK/idle-$1.txt i=0 idle code
  : >"$out"
  sleep "0.0$n"
  for idle in 0 1.9 1.95 2.5 1.99 2.9 1.9; do
    sleep "$idle"
    i=$((i + 1))
    if [ $((i % 2)) -eq 1 ]; then
      code=$(status "$src" "$front/api/v1/campaigns/$campaign/participations" -X POST \
        -H 'Content-Type: application/json' -d "{\"userId\":$((n * 100 + i))}")
      echo "POST-join after-idle=${idle}s $code" >>"$out"
    else
      code=$(status "$src" "$read_url")
      echo "GET after-idle=${idle}s $code" >>"$out"
    fi
  done
}
pids=()
for n in $(seq 1 "$CLIENTS"); do
  idle_client "$n" "127.0.0.$((30 + n))" &
  pids+=($!)
done
samples=""
for _ in $(seq 1 100); do # sampled while the clients run (about 13 s): nginx's pooled connections
  samples="$samples $(upstream_ports)"
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
  [ "$running" -eq 1 ] || break
  sleep 0.2
done
for pid in "${pids[@]}"; do wait "$pid"; done
calls=$(cat "$WORK"/idle-*.txt | wc -l)
failed=$(grep -v -E ' 2[0-9][0-9]$' "$WORK"/idle-*.txt || true)
[ -z "$failed" ] || die "calls over pooled connections failed: $(tr '\n' ';' <<<"$failed") (nginx's errors: $(tail -n 5 "$WORK/logs/error.log"))"
[ "$calls" -eq $((CLIENTS * 7)) ] || die "$calls calls recorded, $((CLIENTS * 7)) expected"
distinct=$(tr ' ' '\n' <<<"$samples" | grep . | sort -u | wc -l)
errors=$(grep -E '\[(error|crit|alert|emerg)\]' "$WORK/logs/error.log" || true)
[ -z "$errors" ] || die "nginx logged errors with the service: $(head -n 5 <<<"$errors")"
after=$(header_timeouts)
[ "$after" = "$before" ] ||
  die "the service closed $((after - before)) connection(s) by its head deadline while nginx pooled them (firstcome_connections_timed_out_total{reason=\"header\"} $before -> $after): nginx's keepalive_timeout must be below HTTP_HEADER_TIMEOUT_MS"
log "ok: $calls calls of $CLIENTS concurrent clients (joins and reads, idles of 1.9-2.9 s between) all answered 2xx ($distinct upstream connections seen with ss); nginx's error log empty; the service closed none by its head deadline"

# 4. The counter-example: nginx's pool outlives the service's head deadline.
code=$(status 127.0.0.40 "$late/api/v1/campaigns/$campaign")
pooled=$(upstream_ports)
if [ "$code" != 200 ] || [ -z "$pooled" ]; then die "through the second nginx server: $code, pooled: '$pooled'"; fi
sleep "$(awk -v ms="$HEAD_DEADLINE_MS" 'BEGIN { print ms / 1000 + 0.6 }')"
late_after=$(header_timeouts)
left=$(upstream_ports)
if ! [[ $late_after =~ ^[0-9]+$ ]] || [ "$late_after" -le "$after" ] || [ -n "$left" ]; then
  die "with keepalive_timeout 60s the service did not close nginx's pooled connection ($pooled) by its ${HEAD_DEADLINE_MS} ms head deadline (still open: '$left'; timed out by the head deadline: $after -> $late_after)"
fi
code=$(status 127.0.0.40 "$late/api/v1/campaigns/$campaign")
[ "$code" = 200 ] || die "through the second nginx server after the service closed its pooled connection: $code"
log "ok: with keepalive_timeout 60s instead, the service cut nginx's idle pooled connection at its ${HEAD_DEADLINE_MS} ms head deadline ($after -> $late_after): a call sent on it at that instant would fail"

log "ok: nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///') in front of the service as the README shows: clients seen by their own addresses, forged lines ignored, $calls calls over idle pooled connections without a failure"
