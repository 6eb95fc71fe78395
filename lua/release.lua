-- release.lua: compensation for a reservation whose MySQL transaction did not commit. It runs
-- before the response, on every failure after the gate, and from the reconciler for
-- reservations a crashed instance left open. It never recreates missing state: if the campaign
-- hash is gone, the next request reloads it from MySQL, which already tells the truth.
--
-- KEYS[1]  campaign hash "<prefix>{c:<id>}:meta"
-- KEYS[2]  winners set   "<prefix>{c:<id>}:users"
-- KEYS[3]  open reservations "<prefix>{c:<id>}:pending"
-- ARGV[1]  user id
-- ARGV[2]  quantity that was reserved
-- ARGV[3]  mode:
--          "undo"      nothing was written: give the stock back, forget the user
--          "keep_user" MySQL already has this user's win: give the stock back, keep the user
--          "sold_out"  MySQL's guard refused: forget the user, set stock to ARGV[4]
--          "expire"    a leaked reservation (its instance died; MySQL has no win for the user):
--                      like "undo", but only if the open reservation is still ARGV[4] (so two
--                      reconcilers, or a late settle, never give the same units back twice)
-- ARGV[4]  with "sold_out": campaign.remaining_stock as MySQL saw it. Redis may then be higher
--          than the truth while other reservations are in flight (never lower), so it can only
--          send extra requests to the MySQL guard, never refuse stock that exists.
--          with "expire": the open reservation's value as the reconciler read it
--
-- Returns  1 when stock was adjusted, 0 otherwise
local mode = ARGV[3]
if mode == 'expire' and redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[4] then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
if mode ~= 'keep_user' then
  redis.call('SREM', KEYS[2], ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if mode == 'sold_out' then
  redis.call('HSET', KEYS[1], 'stock', ARGV[4])
else
  redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[2]))
end
return 1
