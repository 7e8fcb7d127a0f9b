-- Mark one e-ticket used, exactly once: the gate's scan of a payload whose signature the
-- caller has verified. The ticket must belong to a confirmed purchase of its account and be
-- within its seats; the first scan is kept ("<µs> <gate>"), every later one answers it.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] holds  KEYS[2] scans   (+ audit chain key / act last, see audit.lua: the first,
-- accepted scan writes the record; a refused one writes none)
-- ARGV[1] ticket id  ARGV[2] hold id  ARGV[3] seat number  ARGV[4] account  ARGV[5] gate
-- Returns {code, record}   code: 'ok' (record: this scan) | 'already_used' (record: the
-- first scan) | 'unknown' (no such purchase or seat for this account)
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return {'unknown', ''} end
local r = cjson.decode(raw)
if r.account ~= ARGV[4] or r.state ~= 'confirmed' or tonumber(ARGV[3]) > tonumber(r.tickets) then
  return {'unknown', ''}
end
local first = redis.call('HGET', KEYS[2], ARGV[1])
if first then return {'already_used', first} end
local t = redis.call('TIME')
local record = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])) .. ' ' .. ARGV[5]
redis.call('HSET', KEYS[2], ARGV[1], record)
audit_write('used')
return {'ok', record}
