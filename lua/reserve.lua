-- reserve.lua: the FCFS gate. One atomic step decides whether a request may open a MySQL
-- transaction: window, per-user limit, one win per user, stock, and the FCFS sequence number.
-- Runs after entry.lua (the window and limit checks, `entry_refusal`).
--
-- KEYS[1]  campaign hash  "<prefix>{c:<id>}:meta"  fields: stock, starts_ms, ends_ms (0 = no end),
--                                                         limit, seq, expire_ms (0 = keep), epoch,
--                                                         state (open | paused | closed; absent = open),
--                                                         last_ms (the latest reservation's time),
--                                                         gen (the gate's generation, load.lua)
-- KEYS[2]  winners set    "<prefix>{c:<id>}:users" members: user ids holding a reservation or a win
-- KEYS[3]  open reservations "<prefix>{c:<id>}:pending" user id -> "<reserved at ms>:<quantity>",
--          removed when the transaction settles (commit or release); what is left there long
--          after was leaked by a crash and is given back by the reconciler (release.lua expire)
-- KEYS[4]  waiting-room tickets "<prefix>{c:<id>}:qt" (see queue.lua)
-- KEYS[5]  admissions "<prefix>{c:<id>}:qadm": ticket -> token expiry ms (see queue.lua)
-- ARGV[1]  user id
-- ARGV[2]  quantity (>= 1)
-- ARGV[3]  now, milliseconds since the Unix epoch (the caller's clock, so every instance agrees
--          with the window it checked in process)
-- ARGV[5]  the admission token's ticket, or "" when the campaign has no waiting room
-- ARGV[6]  the admission token's expiry, ms (its signature was checked by the caller)
-- ARGV[4]  epoch: the campaign's creation time in microseconds. Keys whose epoch differs belong
--          to another campaign that had this id (a database reset) and count as missing.
-- ARGV[7]  the campaign's group's per-user limit in units, 0 when it is in no group. With a
--          group (docs/design.md §22) come, in the group's slot (the user's home bucket):
--          KEYS[6]  units held "<prefix>{g:<group>}:<id>:held": user -> the units of the user's
--                   one reservation or win here (written with the winners set, kept as it is)
--          KEYS[7…] each other campaign of the group: its hash, then its units held
--          ARGV[8…] each other campaign's epoch, in the same order
--
-- Returns  {status, value, winners}; winners is 0 except with SOLD_OUT
--   {"OK", sequence, rets, gen}  stock decremented by quantity, user recorded, sequence handed
--                           out; gen = the generation of the gate that made the reservation
--                           (load.lua): the win commits only while its MySQL row still counts it
--   {"MISSING", 0}          the campaign's keys are not loaded (or are stale): load them and retry
--   {"ENDED", 0}            closed early (state closed), or ends_ms > 0 and now >= ends_ms
--   {"NOT_OPEN", 0}         now < starts_ms
--   {"PAUSED", 0}           paused by an admin (docs/design.md §15)
--   {"OVER_LIMIT", 0}       quantity > limit
--   {"MISSING", i}          (i >= 1) the i-th other campaign of the group is not loaded: its
--                           units held are unknown; load it and retry
--   {"GROUP_LIMIT", held}   the user holds `held` units across the group's other campaigns and
--                           quantity more would pass the group's limit; the admission it
--                           carried is spent (expired), so its unit goes to the next in line
--   {"ALREADY", 0}          the user already holds a reservation or a win
--   {"TOKEN_INVALID", 0}    the ticket is not this user's, or not the admission it was signed for
--   {"TOKEN_USED", 0}       the admission was used already
--   {"TOKEN_EXPIRED", 0}    the admission expired (now >= its expiry) or was forgotten
--   {"SOLD_OUT", stock, n, p, age}  fewer than quantity units left; n = SCARD of the winners
--                           set (lets the caller tell whether its copy of the set is current);
--                           p = the open reservations (HLEN of KEYS[3]): units may yet come back,
--                           or the wins holding them may not be committed yet, so the caller asks
--                           again once they settle (docs/design.md §6); age = ms since the
--                           campaign's latest reservation (meta `last_ms`): when even that one
--                           is old, what is open was leaked by a crash or waits on a stalled
--                           MySQL, and the caller does not wait for it
-- The OK answer carries a third value, the campaign's `rets` (returns applied so far, see
-- return.lua): a MySQL refusal of this reservation hands it back to release.lua.
local meta = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms', 'limit', 'expire_ms', 'epoch', 'state', 'last_ms', 'gen')
if not meta[1] or meta[6] ~= ARGV[4] then
  return {'MISSING', 0}
end
local quantity = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local refused = entry_refusal(meta, now, quantity)
if refused then
  return {refused, 0}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {'ALREADY', 0}
end
-- The waiting room's admission, checked with the stock in this one step and used only by a
-- win. It comes after ALREADY: a retry of a win (Idempotency-Key) carries the used token.
local ticket = ARGV[5] or ''
local queued
if ticket ~= '' then
  local raw = redis.call('HGET', KEYS[4], ticket)
  local state, owner
  if raw then
    state, owner, queued = string.match(raw, '^(%a):(%d+):(%d+)$')
  end
  if not state or owner ~= ARGV[1] then
    return {'TOKEN_INVALID', 0}
  end
  if state == 'U' then
    return {'TOKEN_USED', 0}
  end
  local expires = tonumber(redis.call('ZSCORE', KEYS[5], ticket))
  if state ~= 'A' or not expires or now >= expires then
    return {'TOKEN_EXPIRED', 0}
  end
  if expires ~= tonumber(ARGV[6]) then
    return {'TOKEN_INVALID', 0}
  end
end
local group_limit = tonumber(ARGV[7]) or 0
if group_limit > 0 then
  local held = 0
  for i = 1, (#KEYS - 6) / 2 do
    if redis.call('HGET', KEYS[5 + 2 * i], 'epoch') ~= ARGV[7 + i] then
      return {'MISSING', i}
    end
    held = held + (tonumber(redis.call('HGET', KEYS[6 + 2 * i], ARGV[1])) or 0)
  end
  if held + quantity > group_limit then
    -- The admission is spent: its holder cannot buy here, and its unit goes to the next
    -- admission at once (a waitlist's offer passes on) instead of when the token expires.
    if ticket ~= '' then
      redis.call('ZREM', KEYS[5], ticket)
      redis.call('HSET', KEYS[4], ticket, 'X:' .. ARGV[1] .. ':' .. queued)
    end
    return {'GROUP_LIMIT', held}
  end
end
local stock = tonumber(meta[1])
if stock < quantity then
  return {'SOLD_OUT', stock, redis.call('SCARD', KEYS[2]), redis.call('HLEN', KEYS[3]),
          now - (tonumber(meta[8]) or 0)}
end

redis.call('HINCRBY', KEYS[1], 'stock', -quantity)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3] .. ':' .. ARGV[2])
if group_limit > 0 then
  redis.call('HSET', KEYS[6], ARGV[1], ARGV[2])
end
if ticket ~= '' then
  redis.call('ZREM', KEYS[5], ticket)
  redis.call('HSET', KEYS[4], ticket, 'U:' .. ARGV[1] .. ':' .. queued)
end
local expire = tonumber(meta[5]) or 0
if expire > 0 and redis.call('PTTL', KEYS[2]) == -1 then
  redis.call('PEXPIREAT', KEYS[2], expire)
  redis.call('PEXPIREAT', KEYS[3], expire)
  if group_limit > 0 then
    redis.call('PEXPIREAT', KEYS[6], expire)
  end
end
return {'OK', redis.call('HINCRBY', KEYS[1], 'seq', 1), tonumber(redis.call('HGET', KEYS[1], 'rets')) or 0,
        tonumber(meta[9]) or 0}
