-- Load one games' State pool, once: every item's quantity becomes its loaded and pool counts,
-- every session its JSON record. Refused (nothing changed) if the games' pool is loaded
-- already: a second load could break pool + allocated + assigned + used = loaded.
-- KEYS[1] loaded  KEYS[2] pool  KEYS[3] sessions  KEYS[4] journal  KEYS[5] calendar
-- (+ declarations, audit chain key last: see lua_include/declared.lua and guichet.audit's
-- audit.lua)
-- ARGV[1] actor  ARGV[2] number of items n, then n x (item "S:C", quantity),
--         then (session id, session JSON) pairs (+ declaration ask, act last)
-- Returns {code, detail}   code: 'ok' (detail: tickets loaded) | 'pool_loaded' (detail: the
-- tickets loaded already) | a refusal of declared.lua
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
  return {'pool_loaded', tostring(total)}
end
local n = tonumber(ARGV[2])
local total = 0
for i = 3, 2 + 2 * n, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  total = total + tonumber(ARGV[i + 1])
end
local first
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  local day = cjson.decode(ARGV[i + 1]).date
  if first == nil or day < first then first = day end
end
if first then redis.call('HSET', KEYS[5], 'first', first) end
local t = redis.call('TIME')
redis.call('XADD', KEYS[4], '*', 'act', 'pool_load', 'programme', '', 'tickets', tostring(total),
  'by', ARGV[1], 'at', t[1] .. string.format('%06d', tonumber(t[2])))
audit_write('loaded')
return {'ok', tostring(total)}
