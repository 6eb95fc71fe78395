-- return.lua: gives the units of a cancelled or expired win back to the gate, exactly once
-- (docs/design.md §14). MySQL has already taken them back, in the transaction that closed the
-- win and wrote its gate_return marker; this runs after that commit, and again from the loop that
-- walks the markers, so it may run several times for one win: the returned set makes every run
-- after the first a no-op. The user stays in the winners set (refused for this campaign).
--
-- KEYS[1]  campaign hash  "<prefix>{c:<id>}:meta"
-- KEYS[2]  returned set   "<prefix>{c:<id>}:returned" (participation ids whose units are back)
-- ARGV[1]  participation id
-- ARGV[2]  quantity
-- ARGV[3]  epoch (the campaign's creation time in microseconds; see reserve.lua)
--
-- Returns  1 when the units were added, 0 when this win's units were back already,
--          -1 when the campaign's state is not loaded (or is another campaign's): the marker stays,
--          and the next rebuild reads MySQL, where the units are back already
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[3] then
  return -1
end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[2]))
-- Counts the returns applied: a reservation refused by MySQL sets the stock from MySQL's reading
-- only if no return came in since it was made (release.lua, "sold_out").
redis.call('HINCRBY', KEYS[1], 'rets', 1)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
