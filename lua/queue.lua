-- queue.lua: a campaign's waiting room (docs/design.md §16). One atomic step: forget tickets
-- nobody polled for a while and admissions whose token expired unused; enqueue a user
-- (`enqueue`: at the back, or at a raffle place); admit from the head of the queue as many
-- users as the rate allows since the last admission and the free stock covers; answer the
-- user's ticket, or the one asked for (`poll`). And one read that changes nothing (`holder`):
-- who holds a ticket, which a poll's checks (the caller's token, the holder's rate limit) need
-- before its step may move the room.
--
-- A poll names the ticket and its holder as the caller's checks found it: a ticket this room
-- never issued, or another user's, is answered UNKNOWN before anything is written, so a refused
-- poll neither refreshes a ticket nor admits anyone.
--
-- A slot is one unit of stock set aside for an admitted user until their token is used or
-- expires: the room never admits more users than the gate's stock minus the live admissions,
-- so units that come back (a cancel, an expiry, a withdrawal undone) go to the next admissions.
--
-- KEYS[1]  campaign hash  "<prefix>{c:<id>}:meta"   stock, starts_ms, epoch, state (reserve.lua)
-- KEYS[2]  waiting        "<prefix>{c:<id>}:q"      zset ticket -> place (lowest first)
-- KEYS[3]  tickets        "<prefix>{c:<id>}:qt"     hash ticket -> "<state>:<user>:<queued ms>"
--          state W waiting, A admitted (token live), U used (the user joined), X expired
-- KEYS[4]  users          "<prefix>{c:<id>}:qu"     hash user -> ticket (one per user)
-- KEYS[5]  last polls     "<prefix>{c:<id>}:qseen"  zset waiting ticket (waitlisted ones too)
--          -> last poll ms
-- KEYS[6]  admissions     "<prefix>{c:<id>}:qadm"   zset admitted ticket -> token expiry ms
-- KEYS[7]  room           "<prefix>{c:<id>}:qroom"  hash: epoch, last_ms, credit (admissions
--          due, a fraction carried), arrivals (a counter), admitted (in all), wait_ms (their waits)
-- KEYS[8]  winners        "<prefix>{c:<id>}:users"  the gate's winners set (reserve.lua)
-- KEYS[9]  used           "<prefix>{c:<id>}:qused"  a bucketed campaign's room (below): zset
--          ticket -> when its win was reported committed, ms
-- KEYS[10] waitlist       "<prefix>{c:<id>}:qwl"    set of waiting tickets told the campaign was
--          sold out, kept while they poll until an offer reaches them (docs/design.md §22): a
--          waitlisted ticket not polled within ARGV[6] is dropped as a waiting one is, so tickets
--          that stopped polling never hold the offers back from the ones still there
-- KEYS[11] offers         "<prefix>{c:<id>}:qoff"   zset ticket -> offer expiry ms: admissions of
--          waitlisted tickets, until taken (used by a win) or passed on (expired)
-- KEYS[12] forgotten      "<prefix>{c:<id>}:qgone"  zset ticket -> when it was forgotten, ms: a
--          forgotten ticket's record (state X) leaves KEYS[3] ARGV[12] later, and its user's
--          entry of KEYS[4] with it if it still names it, so the room's hashes hold the tickets
--          of the last ARGV[12] only, however many come and go (issue 72)
-- ARGV[1]  op: "enqueue", "poll", "holder" (a read: only ARGV[3] and ARGV[7] are used) or
--          "used" (below)
-- ARGV[2]  now, ms since the Unix epoch (the caller's clock, as reserve.lua)
-- ARGV[3]  epoch (see reserve.lua): other keys than this campaign's count as missing
-- ARGV[4]  admissions per second (>= 1)
-- ARGV[5]  token lifetime, ms
-- ARGV[6]  a waiting ticket (waitlisted or not) not polled for this long is dropped, ms
-- ARGV[7]  enqueue: the user id;  poll, holder: the ticket
-- ARGV[8]  enqueue: a fresh ticket id, used if the user holds none;  poll: the ticket's holder
-- ARGV[9]  enqueue: the place of a raffle arrival before the start (0 <= place < 2^48), or ""
--          to queue behind everyone already there
-- ARGV[10] a bucketed campaign's room (docs/design.md §21), "" for an unbucketed one:
--          "<free>:<state>:<starts ms>:<expire ms>:<won>:<read ms>" as the caller read them,
--          since the campaign's stock lives in its buckets' slots and MySQL's pool, not in
--          KEYS[1]: its free units (pool plus bucket rows: committed wins are out, reserved
--          units still in), its state (open, paused, closed), its start, when its keys expire
--          (0: kept), (enqueue) 1 when the user holds a reservation or a win in their home
--          bucket, else 0, and when the reading began. KEYS[1] and KEYS[8] are then not read;
--          the admission is checked in the home bucket's slot (lua/admit.lua copies it there
--          before its holder gets a token).
--
-- A bucketed room's live admissions: the admitted tickets (KEYS[6]), whose units the reading
-- still counts, and the used ones whose win was reported committed (op "used") after the reading
-- began less a second for the instances' clocks (KEYS[9]), which the reading may not show yet.
-- So the room admits no more users than the units left, as an unbucketed one.
--
-- The op "used" (a bucketed campaign's): ARGV[2] now, ARGV[5] when the keys expire (0: kept),
-- ARGV[7] the ticket, ARGV[8] its holder: the admission's win committed; it leaves the
-- admissions for the used ({"USED"}, or {"UNKNOWN"} when it was not live here). The op "spent"
-- (a bucketed campaign's too): the admission's join was refused for its group's limit
-- (reserve.lua spends it in the home bucket); it expires here as well ({"SPENT"}), so its unit
-- goes to the next admission at once.
--
-- ARGV[12] enqueue, poll: how long a forgotten ticket's record is kept, ms (a poll of it answers
--          EXPIRED meanwhile, UNKNOWN after)
-- ARGV[13] enqueue, poll: a room of a campaign without an end keeps its keys this long after
--          its last step, ms (every room key has a time to live: the gate's expiry when the
--          campaign has an end; renewed by a step that wrote a key, and at least once a minute)
-- KEYS[13] (enqueue) the client's tickets "<prefix>{c:<id>}:qcl:<client>": zset ticket -> queued
--          ms, the client's live tickets in this room (waiting, waitlisted or admitted; the
--          others are taken out as each enqueue reads it), with the room's time to live
-- ARGV[14] enqueue: the most live tickets one client may hold in this room (0: no cap)
-- ARGV[15] enqueue: the most tickets the room keeps waiting, waitlisted ones too (0: no cap)
-- ARGV[11] the campaign's offer lifetime, ms: 0 when it keeps no waitlist (a ticket waiting
--          while the stock is 0 is then answered SOLD_OUT and dropped when not polled, as
--          before). With a waitlist, such a ticket is answered WAITLISTED and kept while it
--          polls; each unit that comes back is an admission of the next waitlisted ticket in
--          order (an offer) valid this long, and an offer not used in time passes to the next.
--          The room hash counts offers, offers_taken, offers_passed.
--
-- Returns  {status, ticket, state, user, position, expires_ms, admitted_now, waited_ms, waiting}
--   {"HOLDER", user}  holder: the user the ticket was issued to
--   {"MISSING"}   the campaign's keys are not loaded (or are stale): load them and retry
--   {"CLIENT_LIMIT"}  enqueue: the client holds ARGV[14] live tickets here; no ticket made
--   {"FULL"}      enqueue: ARGV[15] tickets wait already; no ticket made
--   {"UNKNOWN"}   poll, holder: no such ticket in this campaign's room (never issued, left by
--          another campaign with this id, or the room's keys were lost); poll: not the named
--          holder's
--   {"OK", ticket, state, user, position, expires_ms, admitted_now, waited_ms, waiting,
--    offered_now, taken_now, passed_now, waitlisted, pace_ms}
--          state: WAITING (position >= 1), ADMITTED (expires_ms: the token's expiry), USED,
--          EXPIRED, SOLD_OUT (waiting while the gate's stock is 0; it may come back),
--          WAITLISTED (on the waitlist of a campaign that keeps one: told it was sold out,
--          waiting for an offer);
--          admitted_now / waited_ms: how many this call admitted and the sum of their waits;
--          waiting: the queue's length; offered_now / taken_now / passed_now: the offers this
--          call made, found used, found expired; waitlisted: the waitlist's length;
--          pace_ms: the room's real time per admission (smoothed, and at least the time since the
--          last one), 0 before two admissions were seen
-- The holder of a ticket of this campaign's room (a room left by another campaign that had this
-- id holds none of its tickets), read before anything else: nothing below runs for a poll of a
-- ticket the room never issued or of another user's.
local room_epoch = redis.call('HGET', KEYS[7], 'epoch')
local function holder(ticket)
  local raw = room_epoch == ARGV[3] and redis.call('HGET', KEYS[3], ticket)
  return raw and string.match(raw, '^%a:(%d+):')
end
if ARGV[1] == 'holder' then
  local user = holder(ARGV[7])
  if not user then
    return {'UNKNOWN'}
  end
  return {'HOLDER', user}
end
if ARGV[1] == 'poll' and holder(ARGV[7]) ~= ARGV[8] then
  return {'UNKNOWN'}
end
if ARGV[1] == 'used' or ARGV[1] == 'spent' then
  local raw = room_epoch == ARGV[3] and redis.call('HGET', KEYS[3], ARGV[7])
  local queued = raw and string.match(raw, '^A:' .. ARGV[8] .. ':(%d+)$')
  if not queued then
    return {'UNKNOWN'}
  end
  redis.call('ZREM', KEYS[6], ARGV[7])
  if ARGV[1] == 'spent' then
    redis.call('HSET', KEYS[3], ARGV[7], 'X:' .. ARGV[8] .. ':' .. queued)
    redis.call('ZADD', KEYS[12], tonumber(ARGV[2]), ARGV[7])
    return {'SPENT'}
  end
  redis.call('HSET', KEYS[3], ARGV[7], 'U:' .. ARGV[8] .. ':' .. queued)
  redis.call('ZADD', KEYS[9], tonumber(ARGV[2]), ARGV[7])
  local expire = tonumber(ARGV[5]) or 0
  if expire > 0 then
    redis.call('PEXPIREAT', KEYS[9], expire)
  end
  return {'USED'}
end
local meta
local bucketed = (ARGV[10] or '') ~= ''
local won_elsewhere = false
local used_live = 0
if bucketed then
  local free, state, starts, expire, won, read_ms =
    string.match(ARGV[10], '^(%-?%d+):(%a+):(%d+):(%d+):([01]):(%d+)$')
  if not free then
    return redis.error_reply('queue.lua: ARGV[10] is not <free>:<state>:<starts>:<expire>:<won>:<read>')
  end
  meta = {free, starts, ARGV[3], state, expire}
  won_elsewhere = won == '1'
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', '(' .. (tonumber(read_ms) - 1000))
  used_live = redis.call('ZCARD', KEYS[9])
else
  meta = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'epoch', 'state', 'expire_ms')
  if not meta[1] or meta[3] ~= ARGV[3] then
    return {'MISSING'}
  end
end
-- A room left by another campaign that had this id (a database reset) starts again empty.
if room_epoch ~= ARGV[3] then
  if room_epoch then
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[10], KEYS[11],
      KEYS[12])
  end
  redis.call('HSET', KEYS[7], 'epoch', ARGV[3])
end
local now = tonumber(ARGV[2])
local rate = tonumber(ARGV[4])
local offer_ms = tonumber(ARGV[11]) or 0
local offered_now, taken_now, passed_now = 0, 0, 0
-- Whether this step wrote a key that may not have a time to live yet (see keep_keys below).
local wrote = false

local function record(ticket)
  local raw = redis.call('HGET', KEYS[3], ticket)
  if not raw then
    return nil
  end
  local state, user, queued = string.match(raw, '^(%a):(%d+):(%d+)$')
  return state, user, tonumber(queued)
end

local function set_state(ticket, state, user, queued)
  redis.call('HSET', KEYS[3], ticket, state .. ':' .. user .. ':' .. queued)
end

-- Forget: tickets nobody polled within the idle time, and admissions whose token expired.
-- Each ticket is forgotten once, so the work is bounded by what arrived.
local function forget(ticket)
  local _, user, queued = record(ticket)
  if user then
    set_state(ticket, 'X', user, queued)
    redis.call('ZADD', KEYS[12], now, ticket)
    wrote = true
    -- The user may queue again (at the back).
    if redis.call('HGET', KEYS[4], user) == ticket then
      redis.call('HDEL', KEYS[4], user)
    end
  end
end
local idle = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - tonumber(ARGV[6])))
for _, ticket in ipairs(idle) do
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[5], ticket)
  redis.call('SREM', KEYS[10], ticket)
  forget(ticket)
end
-- A token is valid while now < expiry (reserve.lua decides the same way).
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
for _, ticket in ipairs(lapsed) do
  redis.call('ZREM', KEYS[6], ticket)
  -- An offer not used in time passes on: its unit goes to the next admission below.
  if redis.call('ZREM', KEYS[11], ticket) == 1 then
    passed_now = passed_now + 1
  end
  forget(ticket)
end
-- Forgotten tickets leave the room ARGV[12] after they were forgotten (at most 200 a step: the
-- work stays bounded by what arrived). A forgotten ticket never comes back (its user queues with
-- a new one), so its record is only ever X here.
local gone = redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', '(' .. (now - (tonumber(ARGV[12]) or 0)),
  'LIMIT', 0, 200)
for _, ticket in ipairs(gone) do
  local state, user = record(ticket)
  if state == 'X' then
    redis.call('HDEL', KEYS[3], ticket)
    if redis.call('HGET', KEYS[4], user) == ticket then
      redis.call('HDEL', KEYS[4], user)
    end
  end
  redis.call('ZREM', KEYS[12], ticket)
end
-- Offers used by a win since the last step are taken (reserve.lua marks the ticket used); one
-- spent by a join its group's limit refused passed on (its unit is free for the next admission).
for _, ticket in ipairs(redis.call('ZRANGE', KEYS[11], 0, -1)) do
  local state = string.sub(redis.call('HGET', KEYS[3], ticket) or '', 1, 1)
  if state == 'U' then
    redis.call('ZREM', KEYS[11], ticket)
    taken_now = taken_now + 1
  elseif state == 'X' then
    redis.call('ZREM', KEYS[11], ticket)
    passed_now = passed_now + 1
  end
end

-- Enqueue before admitting: a newcomer to a room with free slots is admitted at once. A
-- newcomer over a cap (ARGV[14], ARGV[15]) is given no ticket: `refused` says why.
local ticket, refused
if ARGV[1] == 'enqueue' then
  local user = ARGV[7]
  ticket = redis.call('HGET', KEYS[4], user)
  -- A used admission whose user holds no win (its reservation was undone after a crash, when
  -- the token could not be given back) does not keep the user out: they queue again.
  local holds_win
  if bucketed then
    holds_win = won_elsewhere
  else
    holds_win = redis.call('SISMEMBER', KEYS[8], user) == 1
  end
  if ticket and string.sub(redis.call('HGET', KEYS[3], ticket) or '', 1, 1) == 'U'
      and not holds_win then
    ticket = nil
  end
  local per_client = tonumber(ARGV[14]) or 0
  local max_waiting = tonumber(ARGV[15]) or 0
  if not ticket and max_waiting > 0 and redis.call('ZCARD', KEYS[2]) >= max_waiting then
    refused = 'FULL'
  elseif not ticket and per_client > 0 then
    -- The client's tickets still live; the others leave its list (at most the cap: it never
    -- holds more).
    for _, held in ipairs(redis.call('ZRANGE', KEYS[13], 0, -1)) do
      local held_state = string.sub(redis.call('HGET', KEYS[3], held) or '', 1, 1)
      if held_state ~= 'W' and held_state ~= 'A' then
        redis.call('ZREM', KEYS[13], held)
      end
    end
    if redis.call('ZCARD', KEYS[13]) >= per_client then
      refused = 'CLIENT_LIMIT'
    end
  end
  if not ticket and not refused then
    ticket = ARGV[8]
    if per_client > 0 then
      redis.call('ZADD', KEYS[13], now, ticket)
      local expire = tonumber(meta[5]) or 0
      if expire > 0 then
        redis.call('PEXPIREAT', KEYS[13], expire)
      else
        redis.call('PEXPIRE', KEYS[13], tonumber(ARGV[13]) or 86400000)
      end
    end
    local place
    if ARGV[9] ~= '' then
      place = tonumber(ARGV[9])
    else
      place = 281474976710656 + redis.call('HINCRBY', KEYS[7], 'arrivals', 1)
    end
    redis.call('HSET', KEYS[4], user, ticket)
    set_state(ticket, 'W', user, now)
    redis.call('ZADD', KEYS[2], place, ticket)
    redis.call('ZADD', KEYS[5], now, ticket)
    wrote = true
  end
else
  ticket = ARGV[7]
end

-- Admit: the rate fills a bucket of one second's admissions; nothing accrues before the start,
-- while paused or closed, or from a clock behind the last caller's.
local room = redis.call('HMGET', KEYS[7], 'last_ms', 'credit', 'paced_at', 'pace_ms')
local last = tonumber(room[1])
local credit = tonumber(room[2]) or rate
local starts = tonumber(meta[2])
local running = now >= starts and (meta[4] == false or meta[4] == 'open')
if last and running and now > last then
  local from = math.max(last, starts)
  if now > from then
    credit = credit + (now - from) * rate / 1000
  end
end
credit = math.min(credit, rate)
local stock = tonumber(meta[1])
local admitted_now, waited = 0, 0
if running then
  local free = stock - redis.call('ZCARD', KEYS[6]) - used_live
  local n = math.min(math.floor(credit), free)
  if n > 0 then
    local head = redis.call('ZPOPMIN', KEYS[2], n)
    for i = 1, #head, 2 do
      local ticket = head[i]
      redis.call('ZREM', KEYS[5], ticket)
      local _, user, queued = record(ticket)
      if user then
        local expires = now + tonumber(ARGV[5])
        -- A waitlisted ticket's admission is an offer, valid the offer's lifetime.
        if redis.call('SREM', KEYS[10], ticket) == 1 then
          expires = now + offer_ms
          redis.call('ZADD', KEYS[11], expires, ticket)
          offered_now = offered_now + 1
        end
        redis.call('ZADD', KEYS[6], expires, ticket)
        set_state(ticket, 'A', user, queued)
        admitted_now = admitted_now + 1
        wrote = true
        waited = waited + (now - queued)
      end
    end
    credit = credit - admitted_now
    if admitted_now > 0 then
      redis.call('HINCRBY', KEYS[7], 'admitted', admitted_now)
      redis.call('HINCRBY', KEYS[7], 'wait_ms', waited)
    end
  end
end
redis.call('HSET', KEYS[7], 'last_ms', math.max(last or now, now), 'credit', tostring(credit))
-- The room's real pace (issue 72): the time between admissions while tickets wait, smoothed, so a
-- waiting ticket's estimate follows the sale (slots held by tokens not used yet, units not back
-- yet) and the configured rate is a ceiling. Only intervals with a backlog count (an empty queue
-- admits nobody because nobody waits); waiting since the last admission counts too: a room
-- that admits nobody for a minute answers at least a minute a place.
local paced_at, pace_ms = tonumber(room[3]), tonumber(room[4])
local backlog = redis.call('ZCARD', KEYS[2]) > 0
if admitted_now > 0 and paced_at and now > paced_at then
  local per = (now - paced_at) / admitted_now
  pace_ms = pace_ms and (0.7 * pace_ms + 0.3 * per) or per
  redis.call('HSET', KEYS[7], 'pace_ms', tostring(pace_ms))
end
if backlog and (admitted_now > 0 or not paced_at) then
  redis.call('HSET', KEYS[7], 'paced_at', now)
  paced_at = now
elseif not backlog and paced_at then
  redis.call('HDEL', KEYS[7], 'paced_at')
  paced_at = nil
end
local pace_now = 0
if pace_ms and paced_at then
  pace_now = math.floor(math.max(pace_ms, now - paced_at))
end
for field, n in pairs({offers = offered_now, offers_taken = taken_now, offers_passed = passed_now}) do
  if n > 0 then
    redis.call('HINCRBY', KEYS[7], field, n)
  end
end

-- Every room key has a time to live (issue 72): the room's keys go when the gate's do (a day
-- after the campaign's end), or, for a campaign without an end, ARGV[13] after the room's last
-- step. Renewed by a step that wrote a key (which may be new, without one), else once a minute.
local function keep_keys()
  local refreshed = tonumber(redis.call('HGET', KEYS[7], 'ttl_ms')) or 0
  if not wrote and now - refreshed < 60000 then
    return
  end
  redis.call('HSET', KEYS[7], 'ttl_ms', now)
  local expire = tonumber(meta[5]) or 0
  for _, k in ipairs({2, 3, 4, 5, 6, 7, 10, 11, 12}) do
    if expire > 0 then
      redis.call('PEXPIREAT', KEYS[k], expire)
    else
      redis.call('PEXPIRE', KEYS[k], tonumber(ARGV[13]) or 86400000)
    end
  end
end

if refused then
  keep_keys()
  return {refused}
end
local state, user = record(ticket)
if not state then
  keep_keys()
  return {'UNKNOWN'}
end
local position, expires = 0, 0
local name
if state == 'W' then
  position = redis.call('ZRANK', KEYS[2], ticket) + 1
  local listed = redis.call('SISMEMBER', KEYS[10], ticket) == 1
  if offer_ms > 0 and stock <= 0 and not listed then
    -- Told the campaign is sold out: on the waitlist from now, kept while it polls.
    redis.call('SADD', KEYS[10], ticket)
    listed = true
    wrote = true
  end
  -- Every poll of a waiting ticket, waitlisted or not, shows it alive.
  redis.call('ZADD', KEYS[5], now, ticket)
  if listed then
    name = 'WAITLISTED'
  elseif stock > 0 then
    name = 'WAITING'
  else
    name = 'SOLD_OUT'
  end
elseif state == 'A' then
  expires = tonumber(redis.call('ZSCORE', KEYS[6], ticket)) or 0
  name = 'ADMITTED'
elseif state == 'U' then
  name = 'USED'
else
  name = 'EXPIRED'
end
keep_keys()
return {'OK', ticket, name, user, position, expires, admitted_now, waited, redis.call('ZCARD', KEYS[2]),
        offered_now, taken_now, passed_now, redis.call('SCARD', KEYS[10]), pace_now}
