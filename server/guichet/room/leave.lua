-- Leave: end the account's place in the room; an active session frees its slot at once.
-- KEYS[1] tickets   KEYS[2] active   KEYS[3] sessions   KEYS[4] ended (stream)
-- ARGV[1] account   ARGV[2] the ticket's id (see join.lua)   ARGV[3] ended retention ms
-- An admitted session that ends is appended to the ended stream (field 'a' = account): every
-- worker reads it at its tick and stops accepting the session's admission tokens (guard.py).
-- The ticket can never be admitted afterwards (its number stays, so numbers stay gap-free).
-- Returns {code, freed}   code: 'ok' | 'mismatch' | 'again' (already left)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return {'mismatch', 0} end
local session = redis.call('HGET', KEYS[3], ARGV[1])
if session and string.sub(session, 1, 1) == 'x' then return {'again', 0} end
local freed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], string.format('x%d', now))
if session then
  redis.call('XADD', KEYS[4], 'MINID', '~', math.floor(now / 1000) - tonumber(ARGV[3]), '*',
    'a', ARGV[1])
end
return {'ok', freed}
