-- take.lua: sets aside free units of one bucket's gate for a transfer to a sibling bucket whose
-- gate ran dry (docs/design.md §21). The units leave the stock here first, so no join of this
-- bucket can reserve them while the transfer commits in MySQL; the take is recorded under its id
-- until the transfer settles (untake.lua): forgotten once MySQL moved the units, or given back
-- when it did not.
--
-- KEYS[1]  the bucket's hash "<prefix>{c:<id>:<bucket>}:meta"
-- KEYS[2]  its takes          "<prefix>{c:<id>:<bucket>}:takes" (take id -> "<taken at ms>:<units>")
-- ARGV[1]  epoch (the campaign's creation time in microseconds; see reserve.lua)
-- ARGV[2]  the take's id
-- ARGV[3]  units the asking bucket is short of (>= 1)
-- ARGV[4]  now, ms
--
-- Returns  the units set aside: half the free stock, at least what the asker is short of (or all
--          there is, when that is less); 0 when the gate has none or is not loaded
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'stock', 'state')
if meta[1] ~= ARGV[1] or meta[3] == 'closed' then
  return 0
end
local stock = tonumber(meta[2]) or 0
if stock < 1 then
  return 0
end
local units = math.min(stock, math.max(tonumber(ARGV[3]), math.floor(stock / 2)))
redis.call('HINCRBY', KEYS[1], 'stock', -units)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4] .. ':' .. units)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return units
