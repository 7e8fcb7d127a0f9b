-- Reclaim one programme (seed §2): on its reclaim date every ticket still allocated and not
-- assigned (alloc:<P>) returns to the pool. Idempotent: a programme reclaimed already is
-- answered 'done' with nothing moved, so a reclaim killed midway is simply run again.
-- KEYS[1] programmes  KEYS[2] alloc:<P>  KEYS[3] pool  KEYS[4] stats:<P>  KEYS[5] reclaims
-- KEYS[6] journal (+ declarations, audit chain key last)
-- ARGV[1] programme id  ARGV[2] its reclaim_on (YYYY-MM-DD, as the caller read it)
-- ARGV[3] the reclaim instant (µs: 00:00 Paris that day)  ARGV[4] actor
-- (+ declaration ask, act last; see lua_include/declared.lua, guichet.audit's audit.lua)
-- Returns {code, n}   code: 'ok' (n: tickets returned) | 'done' (n: 0) | 'no_programme' |
-- 'too_early' (n: 0) | 'stale' (the reclaim date changed since the caller read it)
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'no_programme', '0'} end
if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then return {'done', '0'} end
if cjson.decode(raw).reclaim_on ~= ARGV[2] then return {'stale', '0'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now < tonumber(ARGV[3]) then return {'too_early', '0'} end
local total = 0
local counts = redis.call('HGETALL', KEYS[2])
for i = 1, #counts, 2 do
  local n = tonumber(counts[i + 1])
  if n > 0 then
    redis.call('HINCRBY', KEYS[3], counts[i], n)
    total = total + n
  end
end
redis.call('DEL', KEYS[2])
redis.call('HINCRBY', KEYS[4], 'reclaimed', total)
local at = t[1] .. string.format('%06d', tonumber(t[2]))
redis.call('HSET', KEYS[5], ARGV[1], at)
redis.call('XADD', KEYS[6], '*', 'act', 'reclaim', 'programme', ARGV[1],
  'tickets', tostring(total), 'by', ARGV[4], 'at', at)
audit_write('reclaimed')
return {'ok', tostring(total)}
