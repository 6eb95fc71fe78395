-- audit.lua: one atomic read of what the gate holds for a campaign, for the drift audit
-- (docs/design.md §14): its stock and the units of its open reservations, read in one step so
-- that a reservation can never be counted in neither (or both) of them.
--
-- KEYS[1]  campaign hash      "<prefix>{c:<id>}:meta"
-- KEYS[2]  open reservations  "<prefix>{c:<id>}:pending" user id -> "<reserved at ms>:<quantity>"
-- KEYS[3]  a bucket's takes   "<prefix>{c:<id>:<bucket>}:takes" (take.lua): units set aside for a
--          transfer, out of the stock and still in the bucket's row until it commits; counted
--          with the open reservations (an unbucketed campaign has none)
-- ARGV[1]  epoch (the campaign's creation time in microseconds; see reserve.lua)
--
-- Returns  {stock, open reservations, their units} when the campaign's state is loaded,
--          {} when it is not (or is another campaign's): nothing to compare
local meta = redis.call('HMGET', KEYS[1], 'stock', 'epoch')
if meta[2] ~= ARGV[1] or not meta[1] then
  return {}
end
local open, units = 0, 0
for k = 2, 3 do
  local values = redis.call('HVALS', KEYS[k])
  for _, value in ipairs(values) do
    units = units + (tonumber(string.match(value, ':(%-?%d+)$')) or 0)
  end
  open = open + #values
end
return {tonumber(meta[1]), open, units}
