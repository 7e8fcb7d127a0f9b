-- Load or update a sale's catalogue, all or nothing: each item's seats become its loaded
-- count and its stock is what is neither held nor sold. Refused (nothing changed) if an item
-- would have fewer seats than are held and sold already.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] loaded  KEYS[2] stock  KEYS[3] held  KEYS[4] sold  KEYS[5] limited  KEYS[6] sessions
-- ARGV[1] number of items n, then n × (field, seats), then session, limited ('1'/'0'), json …
-- (+ audit chain key / act last, see audit.lua)
-- Returns {code, detail}   code: 'ok' (detail: items) | 'below_taken' (detail: the item)
local n = tonumber(ARGV[1])
for i = 2, 2 * n, 2 do
  local taken = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
    + tonumber(redis.call('HGET', KEYS[4], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) < taken then return {'below_taken', ARGV[i]} end
end
for i = 2, 2 * n, 2 do
  local taken = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
    + tonumber(redis.call('HGET', KEYS[4], ARGV[i]) or '0')
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], tonumber(ARGV[i + 1]) - taken)
end
for i = 2 * n + 2, #ARGV, 3 do
  if ARGV[i + 1] == '1' then redis.call('SADD', KEYS[5], ARGV[i])
  else redis.call('SREM', KEYS[5], ARGV[i]) end
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 2])
end
audit_write('loaded')
return {'ok', tostring(n)}
