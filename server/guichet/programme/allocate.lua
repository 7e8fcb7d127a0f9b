-- Allocate tickets of the pool to one programme, all or nothing: each item's count moves from
-- pool to alloc:<P> (pool + sum alloc + assigned + used = loaded is kept).
-- KEYS[1] programmes  KEYS[2] pool  KEYS[3] alloc:<P>  KEYS[4] stats:<P>  KEYS[5] reclaims
-- KEYS[6] journal (+ declarations, audit chain key last)
-- ARGV[1] programme id  ARGV[2] actor  then (item "S:C", quantity) pairs
-- (+ declaration ask, act last; see lua_include/declared.lua, guichet.audit's audit.lua)
-- Returns {code, item, n}   code: 'ok' (n: tickets allocated) | 'no_programme' |
-- 'reclaimed' (the programme's tickets went back to the pool) | 'unknown_item' (item) |
-- 'pool_short' (item, n: tickets left in the pool)
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'no_programme', '', '0'} end
if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then return {'reclaimed', '', '0'} end
local total = 0
for i = 3, #ARGV, 2 do
  local left = redis.call('HGET', KEYS[2], ARGV[i])
  if not left then return {'unknown_item', ARGV[i], '0'} end
  if tonumber(left) < tonumber(ARGV[i + 1]) then return {'pool_short', ARGV[i], left} end
  total = total + tonumber(ARGV[i + 1])
end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], -tonumber(ARGV[i + 1]))
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', KEYS[4], 'allocated', total)
local t = redis.call('TIME')
redis.call('XADD', KEYS[6], '*', 'act', 'allocate', 'programme', ARGV[1],
  'tickets', tostring(total), 'by', ARGV[2], 'at', t[1] .. string.format('%06d', tonumber(t[2])))
audit_write('allocated')
return {'ok', '', tostring(total)}
