-- rejoin.lua: winners whose reservation a gate no longer had when their win committed (its keys
-- were lost and rebuilt while the win was in flight: the rebuild read MySQL's winners before
-- the commit) go back into the gate's winners set, so the gate refuses them a second win as it
-- does every past winner (MySQL's UNIQUE refuses it anyway). Called only when the settle's HDEL
-- found fewer open reservations than wins, so it costs nothing otherwise.
--
-- KEYS[1]  campaign hash   "<prefix>{c:<id>}:meta"
-- KEYS[2]  winners set     "<prefix>{c:<id>}:users"
-- KEYS[3]  rebuilds        "<prefix>{c:<id>}:building" (see prepare.lua)
-- KEYS[4]  only for a campaign in a group: units held "<prefix>{g:<group>}:<id>:held"
-- ARGV     the users whose wins committed; for a campaign in a group each user is followed by
--          the units of the win (held again with it)
--
-- Returns  the users added; 0 when the gate is neither loaded nor being rebuilt (its next
--          rebuild reads them from MySQL, and a set without its hash would be left behind)
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('SCARD', KEYS[3]) == 0 then
  return 0
end
local added
if KEYS[4] then
  local users = {}
  for i = 1, #ARGV, 2 do
    users[#users + 1] = ARGV[i]
  end
  added = redis.call('SADD', KEYS[2], unpack(users))
  redis.call('HSET', KEYS[4], unpack(ARGV))
else
  added = redis.call('SADD', KEYS[2], unpack(ARGV))
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  if KEYS[4] then
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
end
return added
