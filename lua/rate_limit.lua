-- rate_limit.lua: one token bucket (docs/design.md §16): per user or per client IP, shared by
-- every instance. Time is Redis's own (TIME), so instances with skewed clocks share one bucket
-- fairly.
--
-- KEYS[1]  bucket hash "<prefix>rl:<u|ip>:<who>"  fields: tokens, at (ms of the last update)
-- ARGV[1]  tokens added per second (> 0)
-- ARGV[2]  burst: the most tokens the bucket holds (>= 1)
--
-- Returns  {1, 0} when a token was taken; {0, ms} when none is left: ms until one is
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', math.max(now, at))
-- A bucket left alone refills completely within burst / rate; then it is the same as no key.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
if taken == 1 then
  return {1, 0}
end
return {0, math.ceil((1 - tokens) * 1000 / rate)}
