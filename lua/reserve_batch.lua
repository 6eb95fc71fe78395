-- reserve_batch.lua: the FCFS gate for several joins of one slot in one call (src/gate/batch.rs
-- gathers the joins that arrive while the slot's previous call is in flight). Each join is
-- decided exactly as reserve.lua decides a join without an admission and without a group, one
-- after another in the order given: the window and limit (entry.lua, with the join's own clock
-- and quantity), ALREADY, SOLD_OUT with its counts, or the reservation with the next sequence.
-- The point is Redis's time: each call costs its thread a fixed part (the arguments, the
-- campaign hash's read, the reply) that a batch pays once (docs/design.md §10 "Serial
-- sections").
--
-- KEYS[1]  campaign hash, KEYS[2] winners set, KEYS[3] open reservations: as in reserve.lua
-- ARGV[1]  epoch (reserve.lua's ARGV[4]); the whole batch is MISSING when it differs
-- ARGV[2…] per join, three values: user id, quantity, now (ms, the caller's clock)
--
-- Returns one answer per join, in order, each as reserve.lua answers it:
--   {"OK", sequence, rets, gen}, {"MISSING", 0}, {"ENDED", 0}, {"NOT_OPEN", 0}, {"PAUSED", 0},
--   {"OVER_LIMIT", 0}, {"ALREADY", 0}, {"SOLD_OUT", stock, winners, open reservations, age}
local joins = (#ARGV - 1) / 3
local answers = {}
local meta = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms', 'limit', 'expire_ms',
                        'epoch', 'state', 'last_ms', 'gen', 'seq', 'rets')
if not meta[1] or meta[6] ~= ARGV[1] then
  for j = 1, joins do
    answers[j] = {'MISSING', 0}
  end
  return answers
end
local stock = tonumber(meta[1])
local seq = tonumber(meta[10]) or 0
local rets = tonumber(meta[11]) or 0
local gen = tonumber(meta[9]) or 0
local last_ms = meta[8]
local reserved = false
for j = 1, joins do
  local user, quantity, now = ARGV[3 * j - 1], tonumber(ARGV[3 * j]), ARGV[3 * j + 1]
  local refused = entry_refusal(meta, tonumber(now), quantity)
  if refused then
    answers[j] = {refused, 0}
  elseif redis.call('SISMEMBER', KEYS[2], user) == 1 then
    answers[j] = {'ALREADY', 0}
  elseif stock < quantity then
    answers[j] = {'SOLD_OUT', stock, redis.call('SCARD', KEYS[2]), redis.call('HLEN', KEYS[3]),
                  tonumber(now) - (tonumber(last_ms) or 0)}
  else
    stock = stock - quantity
    seq = seq + 1
    last_ms = now
    reserved = true
    redis.call('SADD', KEYS[2], user)
    redis.call('HSET', KEYS[3], user, now .. ':' .. quantity)
    answers[j] = {'OK', seq, rets, gen}
  end
end
if reserved then
  redis.call('HSET', KEYS[1], 'stock', string.format('%d', stock), 'last_ms', last_ms,
             'seq', string.format('%d', seq))
  local expire = tonumber(meta[5]) or 0
  if expire > 0 and redis.call('PTTL', KEYS[2]) == -1 then
    redis.call('PEXPIREAT', KEYS[2], expire)
    redis.call('PEXPIREAT', KEYS[3], expire)
  end
end
return answers
