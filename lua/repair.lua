-- repair.lua: the drift audit's only write (docs/design.md §14): sets a campaign's gate stock to
-- MySQL's remaining_stock, and only if nothing moved since the audit observed it: the stock is
-- still the value read and no reservation is open. A reservation, a release or a return in
-- between changes the stock or opens a reservation, so it is never overwritten; the next audits
-- measure again.
--
-- KEYS[1]  campaign hash      "<prefix>{c:<id>}:meta"
-- KEYS[2]  open reservations  "<prefix>{c:<id>}:pending"
-- KEYS[3]  a bucket's takes   "<prefix>{c:<id>:<bucket>}:takes" (see audit.lua)
-- ARGV[1]  epoch (the campaign's creation time in microseconds; see reserve.lua)
-- ARGV[2]  the stock the audit observed
-- ARGV[3]  the stock to set (campaign.remaining_stock)
--
-- Returns  1 when the stock was set, 0 when something moved (nothing written), -1 when the
--          campaign's state is not loaded (or is another campaign's)
local meta = redis.call('HMGET', KEYS[1], 'stock', 'epoch')
if meta[2] ~= ARGV[1] or not meta[1] then
  return -1
end
if meta[1] ~= ARGV[2] or redis.call('HLEN', KEYS[2]) ~= 0 or redis.call('HLEN', KEYS[3]) ~= 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'stock', ARGV[3])
return 1
