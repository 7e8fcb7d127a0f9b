-- Admit: exchange a ready queue ticket for an active session, at most one per ticket.
-- KEYS[1] cfg   KEYS[2] state   KEYS[3] tickets   KEYS[4] active   KEYS[5] sessions
-- KEYS[6] admitted numbers   KEYS[7] calls (checkpoints, see tick.lua)
-- KEYS[8] the draw's number -> position swaps (tick.lua; absent: position = number)
-- ARGV[1] account   ARGV[2] the ticket's id (see join.lua)   ARGV[3] its number
-- ARGV[4] ready grace µs
-- Idempotent: the same account asking again while its session lives gets that session back.
-- Returns {code, admitted_us, expires_us, serving}
--   code: 'ok' | 'again' | 'unknown' | 'mismatch' (ticket not this account's) |
--         'not_ready' | 'expired' (called more than the grace ago) | 'used' (session ended) |
--         'full' (max_active reached; retry) | 'rejecting' (mode reject: no one admitted)
-- Serving, floors and the admitted zset count positions (tick.lua's random draw swaps them);
-- passthrough admits any issued number at once and ignores max_active (unless paused or
-- sold out). Calls are timed on the grace clock (lua_include/grace_clock.lua).
--!include lua_include/grace_clock.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = redis.call('HMGET', KEYS[1], 'max_active', 'idle_timeout_s', 'paused')
if not c[1] then return {'unknown', 0, 0, 0} end
local account, number = ARGV[1], tonumber(ARGV[3])
if redis.call('HGET', KEYS[3], account) ~= ARGV[2] then return {'mismatch', 0, 0, 0} end

local serving = tonumber(redis.call('HGET', KEYS[2], 'serving') or '0')
local session = redis.call('HGET', KEYS[5], account)
if session then
  if string.sub(session, 1, 1) == 'x' then return {'used', 0, 0, serving} end
  local expires = redis.call('ZSCORE', KEYS[4], account)
  if expires then return {'again', tonumber(session), tonumber(expires), serving} end
  return {'used', 0, 0, serving}
end
-- Queueing modes (docs/architecture.md, lottery.py).
local mode = redis.call('HGET', KEYS[1], 'mode')
if mode == 'reject' then return {'rejecting', 0, 0, serving} end
number = tonumber(redis.call('HGET', KEYS[8], ARGV[3]) or number)  -- its position
-- passthrough lets anyone issued in at once, unless paused or sold out (then as fifo)
local stock = tonumber(redis.call('HGET', KEYS[2], 'stock') or '')
local through = mode == 'passthrough' and c[3] ~= '1' and not (stock and stock <= 0)
if not through and number >= serving then return {'not_ready', 0, 0, serving} end
local cp = redis.call('ZREVRANGEBYSCORE', KEYS[7], grace_clock(KEYS[2], now) - tonumber(ARGV[4]),
  '-inf', 'LIMIT', 0, 1)
local floor = 0
if #cp > 0 then floor = tonumber(string.match(cp[1], ':(%d+)$')) end
if number < floor then return {'expired', 0, 0, serving} end
if not through and redis.call('ZCARD', KEYS[4]) >= tonumber(c[1]) then
  return {'full', 0, 0, serving}
end

local expires = now + tonumber(c[2]) * 1000000
redis.call('ZADD', KEYS[4], expires, account)
redis.call('HSET', KEYS[5], account, now)
redis.call('ZADD', KEYS[6], number, account)
redis.call('HINCRBY', KEYS[2], 'admitted', 1)
return {'ok', now, expires, serving}
