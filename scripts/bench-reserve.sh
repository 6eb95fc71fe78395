#!/usr/bin/env bash
# Where one campaign's Redis thread spends a reservation (docs/design.md §10 "Serial sections"):
# Redis's own µs per call (`INFO commandstats`), measured with redis-benchmark against a private
# redis-server of its own (port 26999, no persistence, stopped afterwards), one hot campaign,
# distinct random users, stock that never runs out:
#   - the call's floor: an empty script with the same 16 arguments;
#   - lua/reserve.lua as the service ships it (entry.lua prepended), one user a call;
#   - a batch prototype (below, not the service's): K users a call, one read of the campaign's
#     hash and one write of it, each user's SADD and HSET, for K = 1, 4, 16, 64: µs a call and
#     µs a reservation.
#
#   scripts/bench-reserve.sh            RUNS=3 scripts/bench-reserve.sh   (interleaved rounds)
#
# Settings: RUNS (1), CALLS (100000 single calls; a batch phase makes CALLS ÷ K calls), PORT (26999).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-1}; CALLS=${CALLS:-100000}; P=${PORT:-26999}
command -v redis-benchmark >/dev/null || "$ROOT/scripts/services.sh" install
DIR=$(mktemp -d)
trap 'redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --daemonize yes --logfile "$DIR/redis.log"
until redis-cli -p "$P" ping >/dev/null 2>&1; do sleep 0.1; done

cat > "$DIR/batch.lua" <<'LUA'
local meta = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms', 'limit', 'expire_ms',
                        'epoch', 'state', 'last_ms', 'gen', 'seq', 'rets')
if not meta[1] or meta[6] ~= ARGV[2] then return {'MISSING', 0} end
local refused = entry_refusal(meta, tonumber(ARGV[1]), 1)
if refused then return {refused, 0} end
local stock, seq, out = tonumber(meta[1]), tonumber(meta[10]) or 0, {}
for i = 3, #ARGV do
  if stock < 1 then
    out[#out + 1] = 'S'
  elseif redis.call('SADD', KEYS[2], ARGV[i]) == 0 then
    out[#out + 1] = 'A'
  else
    stock, seq = stock - 1, seq + 1
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[1] .. ':1')
    out[#out + 1] = seq
  end
end
redis.call('HSET', KEYS[1], 'stock', string.format('%d', stock), 'last_ms', ARGV[1],
           'seq', string.format('%d', seq))
return out
LUA

# fresh <script>: loads the script, resets the campaign and the counters; prints the script's sha.
fresh() {
  redis-cli -p "$P" FLUSHALL >/dev/null
  redis-cli -p "$P" HSET 'b:{c:1}:meta' stock 1000000000 starts_ms 0 ends_ms 0 limit 1 seq 0 \
    expire_ms 0 epoch 7 state open gen 0 rets 0 >/dev/null
  redis-cli -p "$P" CONFIG RESETSTAT >/dev/null
  redis-cli -p "$P" SCRIPT LOAD "$1"
}
usec() { redis-cli -p "$P" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p'; }
keys5=('b:{c:1}:meta' 'b:{c:1}:users' 'b:{c:1}:pending' 'b:{c:1}:qt' 'b:{c:1}:qadm')
one() {  # one <sha>: single-user calls with reserve.lua's arguments
  redis-benchmark -p "$P" -q -n "$CALLS" -c 32 -r 1000000000 EVALSHA "$1" 5 "${keys5[@]}" \
    __rand_int__ 1 1700000000000 7 "" 0 0 >/dev/null
}
entry=$(cat "$ROOT/lua/entry.lua")

printf '| run | shape | µs a call | µs a reservation |\n|---|---|---|---|\n'
for run in $(seq 1 "$RUNS"); do
  one "$(fresh 'return 1')"; f=$(usec)
  printf '| %s | empty script, 16 arguments (the floor) | %s | – |\n' "$run" "$f"
  one "$(fresh "$entry
$(cat "$ROOT/lua/reserve.lua")")"; r=$(usec)
  printf '| %s | lua/reserve.lua, 1 user | %s | %s |\n' "$run" "$r" "$r"
  for k in 1 4 16 64; do
    sha=$(fresh "$entry
$(cat "$DIR/batch.lua")")
    users=$(for _ in $(seq "$k"); do printf '__rand_int__ '; done)
    # shellcheck disable=SC2086
    redis-benchmark -p "$P" -q -n $(( CALLS / k )) -c 8 -r 1000000000 EVALSHA "$sha" 3 \
      "${keys5[@]:0:3}" 1700000000000 7 $users >/dev/null
    u=$(usec)
    printf '| %s | batch prototype, %s users | %s | %s |\n' "$run" "$k" "$u" \
      "$(python3 -c "print(round($u / $k, 2))")"
  done
done
