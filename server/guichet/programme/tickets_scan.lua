-- A gate scans a programme ticket whose signature the caller has verified: a committed ticket
-- becomes 'used', exactly once (assigned -1, used +1: the pool invariant holds); the first
-- scan ("<µs> <gate>") is kept in the record and answered to every later one.
-- KEYS[1] tickets:P  KEYS[2] assigned  KEYS[3] used
-- ARGV[1] ticket id  ARGV[2] gate
-- (+ audit chain key / act last, see guichet.audit's audit.lua: the first, accepted scan writes
-- the record; a refused one writes none)
-- Returns {code, scan}  code: 'ok' | 'already_used' | 'unknown' (no such ticket, voided, or
-- not committed)
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/give.lua
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'unknown', ''} end
local t = cjson.decode(raw)
if t.state == 'used' then return {'already_used', t.scan} end
if t.state ~= 'committed' then return {'unknown', ''} end
local scan = string.format('%d', now_us()) .. ' ' .. ARGV[2]
t.state = 'used'
t.scan = scan
redis.call('HSET', KEYS[1], ARGV[1], enc(t))
local item = t.session .. ':' .. t.category
redis.call('HINCRBY', KEYS[2], item, -1)
redis.call('HINCRBY', KEYS[3], item, 1)
audit_write('used')
return {'ok', scan}
