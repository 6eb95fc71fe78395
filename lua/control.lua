-- control.lua: applies a committed live control (docs/design.md §15) to the campaign's gate,
-- exactly once. MySQL has the control already (committed with its gate_control marker); this runs
-- right after that commit and again from the marker loop of every instance, so it may run several
-- times, and controls may arrive out of order: each carries its number (`seq`, the campaign's
-- control_seq, one per control in commit order).
--
-- The hash's `ctl` is the number of the last control its stock already includes (written by a
-- rebuild, load.lua, or by release.lua's sold_out, each from MySQL); the `controls` hash holds the
-- stock changes applied on top of it (seq -> delta). A stock change is applied when it is in
-- neither: deltas add up in any order. A state change (pause, resume, close) is applied when it is
-- newer than the state's own number (`state_seq`): the latest control decides, and a closed
-- campaign stays closed.
--
-- KEYS[1]  campaign hash "<prefix>{c:<id>}:meta"
-- KEYS[2]  stock changes "<prefix>{c:<id>}:controls" (seq -> delta, above ctl)
-- ARGV[1]  seq
-- ARGV[2]  kind: "stock", "pause", "resume" or "close"
-- ARGV[3]  delta (stock only; 0 otherwise)
-- ARGV[4]  epoch (the campaign's creation time in microseconds; see reserve.lua)
--
-- Returns  1 when applied, 0 when applied already (or superseded), -1 when the campaign's state
--          is not loaded (the marker stays; a rebuild reads MySQL, where the control is)
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'ctl', 'state', 'state_seq')
if meta[1] ~= ARGV[4] then
  return -1
end
local seq = tonumber(ARGV[1])
local kind = ARGV[2]
local ctl = tonumber(meta[2]) or 0
if kind == 'stock' then
  if seq <= ctl or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    return 0
  end
  redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  return 1
end
local state_seq = tonumber(meta[4]) or 0
if seq <= state_seq or meta[3] == 'closed' then
  return 0
end
local state = ({pause = 'paused', resume = 'open', close = 'closed'})[kind]
if not state then
  return redis.error_reply('unknown control kind ' .. kind)
end
redis.call('HSET', KEYS[1], 'state', state, 'state_seq', ARGV[1])
return 1
