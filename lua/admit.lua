-- admit.lua: a bucketed campaign's admission copied into its holder's home bucket (docs/design.md
-- §21), where reserve.lua checks it in the same atomic step as the bucket's stock. The room
-- (queue.lua, in the campaign's own slot) admits; before the holder is given a token for the
-- admission, this writes it into the home bucket's tickets and admissions, once: an admission
-- the bucket knows already (live, used, or live again after a refused win) is left as it is.
--
-- KEYS[1]  the home bucket's tickets    "<prefix>{c:<id>:<bucket>}:qt"   (see queue.lua)
-- KEYS[2]  the home bucket's admissions "<prefix>{c:<id>:<bucket>}:qadm"
-- ARGV[1]  the ticket
-- ARGV[2]  its holder (user id)
-- ARGV[3]  the admission's expiry, ms (the room's)
-- ARGV[4]  when the campaign's keys expire, ms (0: kept)
--
-- Returns  1 when copied now, 0 when the bucket had it already
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], 'A:' .. ARGV[2] .. ':0')
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
local expire = tonumber(ARGV[4]) or 0
if expire > 0 then
  redis.call('PEXPIREAT', KEYS[1], expire)
  redis.call('PEXPIREAT', KEYS[2], expire)
end
return 1
