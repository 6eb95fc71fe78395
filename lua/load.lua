-- load.lua: (re)builds a campaign's gate state from MySQL, only if it is absent (set-if-absent),
-- so two instances loading at once, or a load racing live reservations, never overwrite state
-- that is already serving. The one exception is a campaign just created (ARGV[7] = "new"): no
-- request can have reached it yet, so whatever its keys hold is left over from an earlier
-- database (ids start again after a reset) and is replaced. MySQL's winners go into the winners set in the same step (ARGV[7..]),
-- so from the moment the hash exists, past winners are refused at the gate and do not hold
-- stock in passing. (A campaign with more winners than one call carries gets the rest by SADD
-- just before this call.) (A winner that commits after that read and asks again passes the
-- gate, is stopped by MySQL's UNIQUE(campaign_id, user_id) and recorded by release.lua keep_user.)
--
-- KEYS[1]  campaign hash "<prefix>{c:<id>}:meta"
-- KEYS[2]  winners set   "<prefix>{c:<id>}:users"
-- KEYS[3]  open reservations "<prefix>{c:<id>}:pending" (only cleared, for a new campaign)
-- ARGV[1]  stock      (campaign.remaining_stock)
-- ARGV[2]  starts_ms
-- ARGV[3]  ends_ms    (0 = no end)
-- ARGV[4]  limit      (per_user_limit)
-- ARGV[5]  seq        (MAX(participation.sequence), so sequences keep growing)
-- ARGV[6]  expire_ms  (absolute expiry of the keys, 0 = keep)
-- ARGV[7]  "new" for a campaign just created (replace), "reload" otherwise (set-if-absent)
-- ARGV[8..] user ids of MySQL's winners (at most a few thousand per call)
--
-- Returns  1 when loaded, 0 when the state was already there
if ARGV[7] == 'new' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if #ARGV >= 8 then
  redis.call('SADD', KEYS[2], unpack(ARGV, 8))
end
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3],
  'limit', ARGV[4], 'seq', ARGV[5], 'expire_ms', ARGV[6])
local expire = tonumber(ARGV[6])
if expire > 0 then
  redis.call('PEXPIREAT', KEYS[1], expire)
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIREAT', KEYS[2], expire)
  end
end
return 1
