-- Revoke: the protected site ends an admitted session (the visitor finished or misbehaved).
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] sessions   KEYS[2] active   KEYS[3] ended (stream)   (+ audit chain key / act last,
-- see audit.lua)
-- ARGV[1] account   ARGV[2] reason ('finished' | 'misbehaved')   ARGV[3] ended retention ms
-- What leave.lua does to an admitted session, for the site: the slot frees at once (active),
-- the session is marked ended ('x<µs>': admit.lua answers 'used', join.lua gives the same
-- ticket back, heartbeat.lua 'gone'), and it is appended to the ended stream (field 'a' =
-- account, as leave.lua and tick.lua; 'r' = reason), from which every worker's guard refuses
-- its admission tokens at its next tick (guard.py). The act's audit record (outcome: the
-- reason) is written only by the call that ends the session; a replay writes none.
-- Returns {code, freed, ended_us}
--   code: 'ok' (ended now; freed 1 when it held a slot) | 'again' (already ended: left, reaped
--         or revoked; ended_us = when) | 'none' (the account has no session here)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local account = ARGV[1]
local session = redis.call('HGET', KEYS[1], account)
if not session then return {'none', 0, 0} end
if string.sub(session, 1, 1) == 'x' then
  return {'again', 0, tonumber(string.sub(session, 2))}
end
local freed = redis.call('ZREM', KEYS[2], account)
redis.call('HSET', KEYS[1], account, string.format('x%d', now))
redis.call('XADD', KEYS[3], 'MINID', '~', math.floor(now / 1000) - tonumber(ARGV[3]), '*',
  'a', account, 'r', ARGV[2])
audit_write(ARGV[2])
return {'ok', freed, now}
