#!/usr/bin/env bash
# Starts a Redis Cluster of three masters on loopback (Debian's redis-server with
# --cluster-enabled, joined by `redis-cli --cluster create`), for the tests of REDIS_CLUSTER=true
# (scripts/test.sh runs it). Idempotent: a cluster that is already up is left alone; one that
# came back broken (a node's state lost) is reset and created again. Nothing is persisted.
#
# Settings (environment): REDIS_CLUSTER_PORTS ("7001 7002 7003"), REDIS_CLUSTER_DIR
# (/tmp/firstcome-redis-cluster). Then, for the service or the tests:
#   REDIS_CLUSTER=true REDIS_URL=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
set -euo pipefail

PORTS=(${REDIS_CLUSTER_PORTS:-7001 7002 7003})
DIR=${REDIS_CLUSTER_DIR:-/tmp/firstcome-redis-cluster}

LOG_TAG=redis-cluster
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null || { log "redis-server is missing (scripts/services.sh installs it)"; exit 1; }

for port in "${PORTS[@]}"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then continue; fi
  mkdir -p "$DIR/$port"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
    --dir "$DIR/$port" --logfile "$DIR/$port/redis.log" --pidfile "$DIR/$port/redis.pid"
  wait_for "Redis on port $port" 20 redis-cli -p "$port" ping
done

cluster_ok() {
  local port
  for port in "${PORTS[@]}"; do
    redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    [ "$(redis-cli -p "$port" cluster info | awk -F: '/^cluster_known_nodes/ {print $2+0}')" = "${#PORTS[@]}" ] || return 1
  done
}

if cluster_ok; then
  log "cluster already up on ports ${PORTS[*]}"
  exit 0
fi
# A node that kept an old cluster's state (or half of one) cannot join a new cluster: start over.
for port in "${PORTS[@]}"; do
  redis-cli -p "$port" flushall >/dev/null 2>&1 || true
  redis-cli -p "$port" cluster reset hard >/dev/null
done
nodes=()
for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
log "creating a cluster of ${#PORTS[@]} masters: ${nodes[*]}"
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
wait_for "the cluster to agree (cluster_state:ok on every node)" 30 cluster_ok
log "ready: REDIS_CLUSTER=true REDIS_URL=$(printf 'redis://%s,' "${nodes[@]}" | sed 's/,$//')"
