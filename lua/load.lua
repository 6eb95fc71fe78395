-- load.lua: the last step of (re)building a campaign's gate state from MySQL (after prepare.lua
-- and the winners' SADDs): writes the campaign hash, only if it is absent (set-if-absent), so two
-- instances loading at once, or a load racing live reservations, never overwrite state that is
-- already serving. Every winner MySQL had is in the winners set before the hash exists, so from
-- the moment reservations are possible, past winners are refused at the gate. (A winner that
-- commits after that read and asks again passes the gate, is stopped by MySQL's
-- UNIQUE(campaign_id, user_id) and recorded by release.lua keep_user.)
--
-- KEYS[1]  campaign hash "<prefix>{c:<id>}:meta"
-- KEYS[2]  winners set   "<prefix>{c:<id>}:users"
-- KEYS[3]  returned set  "<prefix>{c:<id>}:returned"
-- KEYS[4]  stock changes "<prefix>{c:<id>}:controls" (see control.lua; emptied: the stock read
--          from MySQL includes every control up to ARGV[9])
-- KEYS[5]  rebuilds under way "<prefix>{c:<id>}:building" (see prepare.lua; deleted once loaded)
-- KEYS[6]  only for a campaign in a group: units held "<prefix>{g:<group>}:<id>:held" (filled
--          with the winners set, before this script; see reserve.lua)
-- ARGV[1]  stock      (campaign.remaining_stock)
-- ARGV[2]  starts_ms
-- ARGV[3]  ends_ms    (0 = no end)
-- ARGV[4]  limit      (per_user_limit)
-- ARGV[5]  seq        (MAX(participation.sequence), so sequences keep growing)
-- ARGV[6]  expire_ms  (absolute expiry of the keys, 0 = keep)
-- ARGV[7]  epoch      (the campaign's creation time in microseconds; see reserve.lua)
-- ARGV[8]  state      (open | paused | closed, from MySQL in the same snapshot as the stock)
-- ARGV[9]  ctl        (campaign.control_seq: the last control the stock and state include)
-- ARGV[10] rets       where this state's count of applied returns starts (return.lua): a random
--          value per load, far from any other load's, so a reservation made on keys an earlier
--          load wrote never finds the count it saw (release.lua "sold_out" then only gives its
--          units back instead of setting the stock from a MySQL reading older than this load's)
-- ARGV[11] this rebuild's token (prepare.lua). If it is gone, the keys were flushed (or Redis
--          restarted) during the rebuild, and the winners set lacks the past winners added
--          before that: nothing is written, and the rebuild starts again.
-- ARGV[12] gen        (the row's gate_gen, read after this rebuild raised it: docs/design.md
--          §2.1). Reservations carry it (reserve.lua), and a win commits only while the row's
--          gate_gen is still that value: no reservation of a gate Redis lost commits after this
--          rebuild read MySQL, so ARGV[5] is above every sequence a win can still carry. When
--          the state is there already (another rebuild loaded it), its gen is raised to this
--          one: a rebuild that raised the row's count after that state was read would otherwise
--          leave every later win of the gate refused.
-- ARGV[13…] the ids of the campaign's cancelled and expired wins, read with ARGV[1] in one
--          snapshot: their units are in that stock already, so return.lua must not add them again
--          (written here, with the hash, so a load that loses the race writes none of them)
--
-- Returns  1 when loaded, 0 when the state was already there, -1 when the rebuild was
--          interrupted (its token is gone)
if redis.call('EXISTS', KEYS[1]) == 1 then
  if (tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0) < tonumber(ARGV[12]) then
    redis.call('HSET', KEYS[1], 'gen', ARGV[12])
  end
  return 0
end
if redis.call('SISMEMBER', KEYS[5], ARGV[11]) == 0 then
  return -1
end
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3],
  'limit', ARGV[4], 'seq', ARGV[5], 'expire_ms', ARGV[6], 'epoch', ARGV[7],
  'state', ARGV[8], 'ctl', ARGV[9], 'state_seq', ARGV[9], 'rets', ARGV[10], 'gen', ARGV[12])
redis.call('DEL', KEYS[3], KEYS[4])
for i = 13, #ARGV do
  redis.call('SADD', KEYS[3], ARGV[i])
end
local expire = tonumber(ARGV[6])
if expire > 0 then
  redis.call('PEXPIREAT', KEYS[1], expire)
  for _, k in ipairs({2, 3, 6}) do
    if KEYS[k] and redis.call('EXISTS', KEYS[k]) == 1 then
      redis.call('PEXPIREAT', KEYS[k], expire)
    end
  end
end
return 1
