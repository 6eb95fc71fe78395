-- handover_take.lua: a campaign's writer takes the wins other instances handed to it
-- (docs/design.md §23 "One writer per campaign"). An item is "<origin>:<ticket>|<win>". A win
-- is the writer's only if its mark can be set to "taken" (SET NX): an origin that gave up on it
-- first (handover_back.lua) set the mark to "back" and writes the win itself, and the item is
-- dropped here. Each script is atomic, so exactly one of the two ever writes a win, whenever
-- the item reached the list (a push delayed by a Redis stall lands after its origin gave up).
--
-- KEYS[1]  the writer's inbox "<prefix>{i:<id>}:inbox"
-- KEYS[2]  the writer's replies "<prefix>{i:<id>}:replies" (the same hash tag: one slot)
-- ARGV[1]  how many more items to pop from each list (0: none)
-- ARGV[2]  the marks' key prefix "<prefix>{i:<id>}:m:" (the inbox's hash tag: one slot)
-- ARGV[3]  how long a mark lives, ms
-- ARGV[4…] items the writer popped already (its blocking wait's)
-- Returns {the items the writer takes, oldest first; the replies popped, oldest first}: the
-- writer's loop reads both lists in this one call when its wait woke on the inbox.
local items = {}
for i = 4, #ARGV do
    items[#items + 1] = ARGV[i]
end
local replies = {}
if tonumber(ARGV[1]) > 0 then
    local more = redis.call('LPOP', KEYS[1], ARGV[1])
    if more then
        for _, item in ipairs(more) do
            items[#items + 1] = item
        end
    end
    replies = redis.call('LPOP', KEYS[2], ARGV[1]) or {}
end
local taken = {}
for _, item in ipairs(items) do
    local id = string.match(item, '^([^|]+)|')
    if id and redis.call('SET', ARGV[2] .. id, 'taken', 'NX', 'PX', ARGV[3]) then
        taken[#taken + 1] = item
    end
end
return {taken, replies}
