-- Pacer tick: open the room when due, reap idle sessions, advance the serving counter at the
-- room's rate, and return a snapshot of the counters. Every worker runs it about every
-- 200 ms; credit accrues from the elapsed Redis TIME since the last tick (whoever ran it),
-- so several workers never double-advance and the rate never drifts.
-- KEYS[1] cfg   KEYS[2] state   KEYS[3] active (zset account -> idle expiry µs)
-- KEYS[4] sessions (account -> admitted µs | "x<µs>" ended)
-- KEYS[5] calls (zset of checkpoints "<clock µs>:<serving, 15 digits>", scored on the room's
--   grace clock, lua_include/grace_clock.lua: Redis TIME but for the time spent rejecting)
-- KEYS[6] admitted numbers (zset account -> number)
-- KEYS[7] ended (stream of sessions ended, field 'a' = account; see leave.lua)
-- ARGV[1] seed to use if this tick opens the room (hex)   ARGV[2] ready grace µs
-- ARGV[3] rate window µs   ARGV[4] most sessions to reap in one tick
-- ARGV[5] the caller's cursor in the ended stream (last id it read, '0-0' at first)
-- ARGV[6] most ended (and draw-log) entries to return   ARGV[7] ended retention ms
-- KEYS[8] draw swaps position -> number   KEYS[9] draw swaps number -> position
-- KEYS[10] draw log (list of batches "<serving before>:<count>:<issued>")
-- ARGV[8] the caller's cursor in the draw log (entries it has replayed)
-- ARGV[9] a fresh seed for the random draw if this tick is the room's first in random mode
-- Queueing modes (cfg 'mode'; docs/architecture.md): fifo / shuffle-then-fifo call positions
-- in order at the rate; random draws each called position uniformly among those waiting from
-- the seed 'rseed' (lottery.py replays it); passthrough calls every issued number at once
-- (rate and max_active ignored); reject calls no one.
-- Capacity rule: advance by at most max_active - active - pending, where pending counts
-- numbers called within the grace period and not yet admitted; admitting them all would
-- fill the room exactly, never beyond.
-- Returns a flat name/value array (outcomes.Tick decodes it by name): {'code', 'unknown'} or
--   {'code', 'ok', 'now', µs, 'opens', µs, 'closes', µs, 'opened_us', µs | 0, 'pre', n,
--    'issued', n, 'serving', n, 'floor', n, 'active', n, 'admitted', n, 'expired', n,
--    'measured_rate', "%.6f", 'effective_rate', "%.6f", 'stock', share | '', 'paused', 1 | 0,
--    'seed', hex | '', 'opened_now', 1 | 0, 'reaped', n, 'version', cfg version,
--    'ended', {id, account, id, account, ...} after the cursor, oldest first,
--    'mode', m, 'open_mode', m | '', 'rseed', hex | '', 'draw_from', cursor,
--    'draw_len', entries in the draw log, 'draw', {batch, ...} from the cursor}
--!include lua_include/open_room.lua
--!include lua_include/grace_clock.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = redis.call('HMGET', KEYS[1], 'opens_us', 'closes_us', 'rate_per_s', 'max_active',
  'paused', 'version')
if not c[1] then return {'code', 'unknown'} end
local opens, closes = tonumber(c[1]), tonumber(c[2])
local rate, max_active, paused = tonumber(c[3]), tonumber(c[4]), c[5] == '1'
local grace, window = tonumber(ARGV[2]), tonumber(ARGV[3])

local mode = redis.call('HGET', KEYS[1], 'mode') or 'shuffle-then-fifo'
local opened_now = open_room(KEYS[2], now, opens, ARGV[1], mode)
-- The random draw's seed: made the first time the room ticks in random mode, then kept.
-- Its own random value (ARGV[9]): never derived from the shuffle seed, which is published.
if mode == 'random' then redis.call('HSETNX', KEYS[2], 'rseed', ARGV[9]) end
-- Rejecting stops the grace clock (lua_include/grace_clock.lua): open or close the period.
local rejecting_since = redis.call('HGET', KEYS[2], 'reject_since')
if mode == 'reject' and not rejecting_since then
  redis.call('HSET', KEYS[2], 'reject_since', now)
elseif mode ~= 'reject' and rejecting_since then
  redis.call('HINCRBY', KEYS[2], 'held_us', string.format('%d', now - tonumber(rejecting_since)))
  redis.call('HDEL', KEYS[2], 'reject_since')
end
local clock = grace_clock(KEYS[2], now)

-- Reap sessions idle past their expiry: only the expired head of the zset is read.
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
if #gone > 0 then
  redis.call('ZREM', KEYS[3], unpack(gone))
  for _, account in ipairs(gone) do
    redis.call('HSET', KEYS[4], account, string.format('x%d', now))
    redis.call('XADD', KEYS[7], 'MINID', '~', math.floor(now / 1000) - tonumber(ARGV[7]), '*',
      'a', account)
  end
  redis.call('HINCRBY', KEYS[2], 'expired', #gone)
end

local s = redis.call('HMGET', KEYS[2], 'opened_us', 'pre', 'next', 'serving', 'credit',
  'last_us', 'admitted', 'expired', 'stock', 'seed', 'ckpt_us')
local opened_us = tonumber(s[1])
local pre, issued = tonumber(s[2] or '0'), tonumber(s[3] or s[2] or '0')
local serving = tonumber(s[4] or '0')
local stock = tonumber(s[9] or '')
-- A room opened before 'open_mode' existed: its order followed the mode then (still cfg's).
-- The grace clock's value at opening (its first tick since): where the measured rate starts.
local opened_clock = nil
if opened_us then
  redis.call('HSETNX', KEYS[2], 'open_mode', mode)
  redis.call('HSETNX', KEYS[2], 'opened_clock', string.format('%d', opened_us - (now - clock)))
  opened_clock = tonumber(redis.call('HGET', KEYS[2], 'opened_clock'))
end

-- Serving value at a past moment: the last checkpoint at or before it.
local function serving_at(moment)
  local cp = redis.call('ZREVRANGEBYSCORE', KEYS[5], moment, '-inf', 'LIMIT', 0, 1)
  if #cp == 0 then return 0 end
  return tonumber(string.match(cp[1], ':(%d+)$'))
end
local floor = serving_at(clock - grace)
local active = redis.call('ZCARD', KEYS[3])

-- The configured rate, paused or slowed as the linked sale's stock runs down (model.py).
local effective = rate
if paused or mode == 'reject' then effective = 0
elseif stock then
  if stock <= 0 then effective = 0
  else effective = rate * math.max(0.05, math.min(1, stock / 0.2)) end
end

-- The random draw (lottery.py does the same in Python): call position s after swapping it
-- with position s + H(seed, s) mod (issued - s), H = 52 bits of SHA-1("<seed>:<s>").
local function draw(from, count, out)
  local seed = redis.call('HGET', KEYS[2], 'rseed')
  local function at(pos)
    return tonumber(redis.call('HGET', KEYS[8], string.format('%d', pos)) or pos)
  end
  local function put(pos, number)
    local p, n = string.format('%d', pos), string.format('%d', number)
    if pos == number then
      redis.call('HDEL', KEYS[8], p)
      redis.call('HDEL', KEYS[9], n)
    else
      redis.call('HSET', KEYS[8], p, n)
      redis.call('HSET', KEYS[9], n, p)
    end
  end
  for s = from, from + count - 1 do
    local h = tonumber(string.sub(redis.sha1hex(seed .. ':' .. string.format('%d', s)), 1, 13), 16)
    local j = s + math.fmod(h, out - s)
    if j ~= s then
      local a, b = at(s), at(j)
      put(s, b)
      put(j, a)
    end
  end
  redis.call('RPUSH', KEYS[10], string.format('%d:%d:%d', from, count, out))
end

if opened_us then
  local last = tonumber(s[6] or opened_us)
  local credit = tonumber(s[5] or '0') + effective * math.max(0, now - last) / 1000000
  if credit > math.max(1, effective) then credit = math.max(1, effective) end
  local pending = (serving - floor) - redis.call('ZCOUNT', KEYS[6], floor, '+inf')
  local room = max_active - active - pending
  local step = math.min(math.floor(credit), issued - serving, room)
  -- passthrough calls everyone at once unless paused or sold out (effective 0)
  if mode == 'passthrough' then step = effective > 0 and issued - serving or 0 end
  if mode == 'reject' then step = 0 end
  if step > 0 then
    if mode == 'random' then draw(serving, step, issued) end
    serving = serving + step
    if mode ~= 'passthrough' then credit = credit - step end
  end
  -- A checkpoint on every advance and at least once a second: the series stays dense, so
  -- trimming by age never loses the value at a moment still inside the horizon.
  if step > 0 or now - tonumber(s[11] or '0') >= 1000000 then
    -- serving zero-padded: at one score (the tick that lifts a rejection writes at the
    -- frozen clock) the last member in text order is the highest serving
    redis.call('ZADD', KEYS[5], clock, string.format('%d:%015d', clock, serving))
    redis.call('HSET', KEYS[2], 'ckpt_us', now)
  end
  if issued <= serving then credit = math.min(credit, 1) end  -- no one waiting: no hoard
  redis.call('HSET', KEYS[2], 'serving', serving, 'credit', string.format('%.6f', credit),
    'last_us', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (clock - grace - window))
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. floor)
end

-- Measured rate: numbers called per second over the last window (or since opening).
-- On the grace clock (checkpoints are timed on it); none while rejecting.
local measured = 0
if opened_us and mode ~= 'reject' then
  local since = math.max(opened_clock, clock - window)
  if clock > since then
    measured = (serving - serving_at(since)) * 1000000 / (clock - since)
  end
end

-- Sessions ended since the caller last looked: its guard refuses their admission tokens.
local ended = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[7], '(' .. ARGV[5], '+', 'COUNT',
    tonumber(ARGV[6]))) do
  ended[#ended + 1] = entry[1]
  ended[#ended + 1] = entry[2][2]
end

-- The draw log after the caller's cursor: its worker replays it to know who was drawn.
local draw_from = tonumber(ARGV[8])
local draw_log = redis.call('LRANGE', KEYS[10], draw_from, draw_from + tonumber(ARGV[6]) - 1)
local s2 = redis.call('HMGET', KEYS[2], 'open_mode', 'rseed')

return {'code', 'ok', 'now', now, 'opens', opens, 'closes', closes, 'opened_us', opened_us or 0,
  'pre', pre, 'issued', issued, 'serving', serving, 'floor', floor, 'active', active,
  'admitted', tonumber(s[7] or '0'), 'expired', tonumber(s[8] or '0'),
  'measured_rate', string.format('%.6f', measured),
  'effective_rate', string.format('%.6f', effective), 'stock', s[9] or '',
  'paused', paused and 1 or 0, 'seed', s[10] or '', 'opened_now', opened_now,
  'reaped', #gone, 'version', c[6] or '0', 'ended', ended,
  'mode', mode, 'open_mode', s2[1] or '', 'rseed', s2[2] or '', 'draw_from', draw_from,
  'draw_len', redis.call('LLEN', KEYS[10]), 'draw', draw_log}
