-- handover_back.lua: an origin takes back a win its campaign's writer did not answer in time
-- (docs/design.md §23 "One writer per campaign"; the writer's side is handover_take.lua).
--
-- KEYS[1]  the writer's inbox "<prefix>{i:<writer>}:inbox"
-- KEYS[2]  the win's mark "<prefix>{i:<writer>}:m:<origin>:<ticket>"
-- ARGV[1]  the item as it was pushed
-- ARGV[2]  how long a mark lives, ms
-- Returns 1 when the win is the origin's to write (still in the inbox and now out of it, or
-- not taken and now never to be: its mark says "back"), 0 when the writer took it.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
    return 1
end
if redis.call('SET', KEYS[2], 'back', 'NX', 'PX', ARGV[2]) then
    return 1
end
return 0
