-- release.lua: compensation for a reservation whose MySQL transaction did not commit. It runs
-- before the response, on every failure after the gate, and from the reconciler for
-- reservations a crashed instance left open. It never recreates missing state: if the campaign
-- hash is gone, the next request reloads it from MySQL, which already tells the truth.
--
-- KEYS[1]  campaign hash "<prefix>{c:<id>}:meta"
-- KEYS[2]  winners set   "<prefix>{c:<id>}:users"
-- KEYS[3]  open reservations "<prefix>{c:<id>}:pending"
-- KEYS[4]  stock changes "<prefix>{c:<id>}:controls" (see control.lua)
-- KEYS[5]  waiting-room tickets "<prefix>{c:<id>}:qt" (see queue.lua)
-- KEYS[6]  admissions "<prefix>{c:<id>}:qadm" (see queue.lua)
-- KEYS[7]  only for a campaign in a group: units held "<prefix>{g:<group>}:<id>:held" (see
--          reserve.lua), which forgets the user with the winners set
-- ARGV[1]  user id
-- ARGV[2]  quantity that was reserved
-- ARGV[3]  mode:
--          "undo"      nothing was written: give the stock back, forget the user
--          "keep_user" MySQL already has this user's win: give the stock back, keep the user
--          "sold_out"  MySQL's guard refused: forget the user, set stock to ARGV[4] (see below)
--          "expire"    a leaked reservation (its instance died; MySQL has no win for the user),
--                      or one a failed reserve call may have made: like "undo", the admission
--                      not made live again
-- ARGV[9]  the reservation given back, as reserve.lua stored it ("<reserved at ms>:<quantity>").
--          Every mode acts only while the user's open reservation is still exactly that one:
--          the reconciler may have given it back already (the request's transaction outlived
--          RESERVATION_TIMEOUT_MS: a MySQL stall, a stopped instance), a rebuild from MySQL may
--          have replaced the keys (the new gate never counted it), or the user may hold a newer
--          reservation. Giving the units back a second time put the gate a unit above MySQL
--          (likely the drift audit's +1 repairs of the proof runs).
-- ARGV[4]  with "sold_out": campaign.remaining_stock as MySQL saw it. Redis may then be higher
--          than the truth while other reservations are in flight (never lower), so it can only
--          send extra requests to the MySQL guard, never refuse stock that exists.
-- ARGV[5]  with "sold_out": campaign.control_seq read with ARGV[4]. That stock includes every
--          control up to it, and none after: the stock set is ARGV[4] plus the stock changes the
--          gate applied above it (control.lua), and `ctl` moves to it, so no control is counted
--          twice or lost. A reading older than the gate's `ctl` only gives the units back.
-- ARGV[8]  with "sold_out": the campaign's `rets` when the reservation was made (reserve.lua).
--          A return applied since (return.lua counts them) may have come after MySQL's reading,
--          and setting the stock would erase its units from the sale until the drift audit put
--          them back: then the units of the reservation are only given back, like a reading
--          older than `ctl`.
--          Each load starts `rets` at a random value (load.lua), so a reservation made on keys a
--          reload replaced never matches the new count.
-- ARGV[6]  the admission token's ticket the reservation used, or "": with "undo" and "sold_out"
--          (nothing was written) the admission is live again until ARGV[7], its expiry in ms
-- ARGV[10] optional, with "undo": MySQL refused the win because its row's gate generation
--          (gate_gen) is this value and no longer the reservation's (docs/design.md §2.1): the
--          live gate's `gen` is raised to it, whether or not it still has the reservation. The
--          gate that made the reservation was lost, or a rebuild raised the row's count and
--          then loaded nothing (its instance died): every gate loaded after a loss read a count
--          above every lost gate's, so a live gate below the row's count is the newest, and
--          raising it lets its wins commit again.
--
-- Returns  1 when stock was adjusted, 0 otherwise
local mode = ARGV[3]
if ARGV[10] and redis.call('EXISTS', KEYS[1]) == 1
    and (tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0) < tonumber(ARGV[10]) then
  redis.call('HSET', KEYS[1], 'gen', ARGV[10])
end
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[9] then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
local ticket = ARGV[6] or ''
if ticket ~= '' and (mode == 'undo' or mode == 'sold_out') then
  local raw = redis.call('HGET', KEYS[5], ticket)
  local queued = raw and string.match(raw, '^U:' .. ARGV[1] .. ':(%d+)$')
  if queued then
    redis.call('HSET', KEYS[5], ticket, 'A:' .. ARGV[1] .. ':' .. queued)
    redis.call('ZADD', KEYS[6], tonumber(ARGV[7]), ticket)
  end
end
if mode ~= 'keep_user' then
  redis.call('SREM', KEYS[2], ARGV[1])
  if KEYS[7] then
    redis.call('HDEL', KEYS[7], ARGV[1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if mode == 'sold_out' then
  local seen = tonumber(ARGV[5]) or 0
  local rets = tonumber(redis.call('HGET', KEYS[1], 'rets')) or 0
  if seen < (tonumber(redis.call('HGET', KEYS[1], 'ctl')) or 0) or rets ~= tonumber(ARGV[8]) then
    redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[2]))
    return 1
  end
  local stock = tonumber(ARGV[4])
  local applied = redis.call('HGETALL', KEYS[4])
  for i = 1, #applied, 2 do
    if tonumber(applied[i]) > seen then
      stock = stock + tonumber(applied[i + 1])
    else
      redis.call('HDEL', KEYS[4], applied[i])
    end
  end
  redis.call('HSET', KEYS[1], 'stock', stock, 'ctl', seen)
else
  redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[2]))
end
return 1
