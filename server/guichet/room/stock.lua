-- The linked sale's stock signal (share of stock left, 0..1) for a room's pacer.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   KEYS[2] state   (+ audit chain key / act last, see audit.lua)
-- ARGV[1] share left, e.g. '0.250000'
-- Returns {code}   code: 'ok' | 'unknown' (no such room: nothing written)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
redis.call('HSET', KEYS[2], 'stock', ARGV[1])
audit_write('ok')
return {'ok'}
