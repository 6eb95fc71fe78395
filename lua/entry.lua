-- entry.lua: the checks of one entry into a campaign that come before its user and its stock,
-- shared by reserve.lua and cart.lua (src/gate prepends this file to each: one script each).
--
-- meta     the campaign hash's fields as HMGET reads them: stock, starts_ms, ends_ms, limit,
--          expire_ms, epoch, state, last_ms (see reserve.lua)
-- Returns  the refusal (ENDED, NOT_OPEN, PAUSED, OVER_LIMIT), or nil when the entry may go on
local function entry_refusal(meta, now, quantity)
  if meta[7] == 'closed' then
    return 'ENDED'
  end
  if now < tonumber(meta[2]) then
    return 'NOT_OPEN'
  end
  local ends = tonumber(meta[3])
  if ends > 0 and now >= ends then
    return 'ENDED'
  end
  if meta[7] == 'paused' then
    return 'PAUSED'
  end
  if quantity > tonumber(meta[4]) then
    return 'OVER_LIMIT'
  end
  return nil
end

