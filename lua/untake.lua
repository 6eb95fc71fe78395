-- untake.lua: settles a take (take.lua) once its transfer's fate is known, exactly once.
--
-- KEYS[1]  the bucket's hash "<prefix>{c:<id>:<bucket>}:meta"
-- KEYS[2]  its takes          "<prefix>{c:<id>:<bucket>}:takes"
-- ARGV[1]  epoch (see reserve.lua)
-- ARGV[2]  the take's id
-- ARGV[3]  "moved": MySQL moved the units to the sibling; the record is forgotten
--          "back":  no transfer moved them (refused, or past its deadline, judged under the
--                   bucket row's lock): they return to this bucket's stock
--
-- Returns  1 when the take was settled now, 0 when it was settled already (or never made here)
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if not raw then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[2])
if ARGV[3] == 'back' and redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  local units = tonumber(string.match(raw, ':(%d+)$'))
  redis.call('HINCRBY', KEYS[1], 'stock', units)
  -- Units came back to this gate after reservations were made: see return.lua's `rets`.
  redis.call('HINCRBY', KEYS[1], 'rets', 1)
end
return 1
