-- prepare.lua: the first step of (re)building a campaign's gate state. Says whether the state is
-- already there for this campaign, and deletes it when it belongs to another campaign that had
-- the same id (ids start again after a database reset), so that the winners added next by SADD
-- and the hash written by load.lua start from nothing.
--
-- KEYS[1]  campaign hash     "<prefix>{c:<id>}:meta"
-- KEYS[2]  winners set       "<prefix>{c:<id>}:users"
-- KEYS[3]  open reservations "<prefix>{c:<id>}:pending"
-- KEYS[4]  returned set      "<prefix>{c:<id>}:returned"
-- KEYS[5]  stock changes     "<prefix>{c:<id>}:controls"
-- KEYS[6]  rebuilds under way "<prefix>{c:<id>}:building" (a set of their tokens)
-- KEYS[7…] the waiting room's keys (see queue.lua), deleted with the rest; for a campaign in a
--          group, its units held last (see reserve.lua)
-- ARGV[1]  epoch: the campaign's creation time in microseconds
-- ARGV[2]  this rebuild's token: load.lua writes the hash only if it is still in KEYS[6], so a
--          flush or a restart during the rebuild (which empties the winners set it was filling)
--          makes the rebuild start again instead of serving a winners set missing past winners
-- ARGV[3]  how long the token lives, ms (a rebuild that died leaves it behind)
--
-- Returns  1 when the state of this campaign is loaded (nothing to do), 0 when it must be loaded,
--          2 when it must be loaded and another rebuild (another token) is under way: the caller
--          waits a while for that one to load it instead of raising the row's gate generation
--          itself, which would refuse the wins of the gate the other one loads
--          (docs/design.md §2.1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch == ARGV[1] then
  return 1
end
if epoch or redis.call('EXISTS', KEYS[1]) == 1 then
  -- another campaign's (or a version's without epochs): start from nothing
  redis.call('DEL', unpack(KEYS))
else
  -- The hash is gone (a flush, an eviction) and the open reservations left behind were the
  -- lost gate's: the gate loaded next reads its stock from MySQL, where their units are still
  -- free, and their wins can no longer commit (docs/design.md §2.1, the gate's generation).
  -- Kept, a release naming one would give its units to the new gate a second time.
  redis.call('DEL', KEYS[3])
end
local others = redis.call('SCARD', KEYS[6]) - redis.call('SISMEMBER', KEYS[6], ARGV[2])
redis.call('SADD', KEYS[6], ARGV[2])
redis.call('PEXPIRE', KEYS[6], tonumber(ARGV[3]))
if others > 0 then
  return 2
end
return 0
