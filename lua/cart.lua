-- cart.lua: a purchase's items reserved all or none, in one atomic step (docs/design.md §22).
-- Runs after entry.lua (`entry_refusal`). Every campaign of a group keeps its keys under the
-- group's hash tag, and a user's state in the same bucket of each, so one script sees them all.
-- Each item is checked as reserve.lua checks a join (window, pause, per-user limit, one win per
-- user, stock), the group's limit over the user's units in every campaign of the group plus the
-- cart's; nothing is written unless every check passes. Carts serve campaigns without a waiting
-- room (no admission token is checked here).
--
-- KEYS     for each campaign j = 1…G of the group: its hash, winners set, open reservations
--          and units held (4 keys, as reserve.lua names them)
-- ARGV[1]  user id
-- ARGV[2]  now, ms since the Unix epoch
-- ARGV[3]  the group's per-user limit in units
-- ARGV[4]  G
-- ARGV[4 + j]  campaign j's epoch (see reserve.lua)
-- ARGV[5 + G …] the items, in pairs: the campaign's j, the quantity
--
-- Returns  {"OK", 0, sequence, rets, gen, sequence, rets, gen, …}: one triple per item, in item
--          order, as reserve.lua's OK answers them
--          {"MISSING", j}       campaign j's keys are not loaded (or are stale): load, retry
--          {status, n}          item n refused as reserve.lua would: ENDED, NOT_OPEN, PAUSED,
--                               OVER_LIMIT, ALREADY
--          {"GROUP_LIMIT", 0, held}  the user holds `held` units in the group already
--          {"SOLD_OUT", n, stock, winners, open, age}  item n has fewer units than asked (the
--                               values as reserve.lua's SOLD_OUT gives them)
local user = ARGV[1]
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local campaigns = tonumber(ARGV[4])
local function key(j, k)
  return KEYS[4 * (j - 1) + k]
end

local held = 0
for j = 1, campaigns do
  if redis.call('HGET', key(j, 1), 'epoch') ~= ARGV[4 + j] then
    return {'MISSING', j}
  end
  held = held + (tonumber(redis.call('HGET', key(j, 4), user)) or 0)
end

local items, wanted, metas = {}, 0, {}
for i = 5 + campaigns, #ARGV, 2 do
  local item = {tonumber(ARGV[i]), tonumber(ARGV[i + 1])}
  items[#items + 1] = item
  wanted = wanted + item[2]
end
for n, item in ipairs(items) do
  local j, quantity = item[1], item[2]
  local meta = redis.call('HMGET', key(j, 1), 'stock', 'starts_ms', 'ends_ms', 'limit',
    'expire_ms', 'epoch', 'state', 'last_ms', 'gen')
  local refused = entry_refusal(meta, now, quantity)
  if refused then
    return {refused, n}
  end
  if redis.call('SISMEMBER', key(j, 2), user) == 1 then
    return {'ALREADY', n}
  end
  metas[n] = meta
end
if held + wanted > limit then
  return {'GROUP_LIMIT', 0, held}
end
for n, item in ipairs(items) do
  local j, stock = item[1], tonumber(metas[n][1])
  if stock < item[2] then
    return {'SOLD_OUT', n, stock, redis.call('SCARD', key(j, 2)), redis.call('HLEN', key(j, 3)),
            now - (tonumber(metas[n][8]) or 0)}
  end
end

local answer = {'OK', 0}
for n, item in ipairs(items) do
  local j, quantity = item[1], item[2]
  redis.call('HINCRBY', key(j, 1), 'stock', -quantity)
  redis.call('HSET', key(j, 1), 'last_ms', ARGV[2])
  redis.call('SADD', key(j, 2), user)
  redis.call('HSET', key(j, 3), user, ARGV[2] .. ':' .. quantity)
  redis.call('HSET', key(j, 4), user, quantity)
  local expire = tonumber(metas[n][5]) or 0
  if expire > 0 and redis.call('PTTL', key(j, 2)) == -1 then
    for k = 2, 4 do
      redis.call('PEXPIREAT', key(j, k), expire)
    end
  end
  answer[#answer + 1] = redis.call('HINCRBY', key(j, 1), 'seq', 1)
  answer[#answer + 1] = tonumber(redis.call('HGET', key(j, 1), 'rets')) or 0
  answer[#answer + 1] = tonumber(metas[n][9]) or 0
end
return answer
