-- Create or update a programme of this games. Its public is fixed once it exists (its games
-- too: the caller checks the index, and this slot is the games').
-- KEYS[1] programmes  KEYS[2] journal (+ declarations, audit chain key last)
-- ARGV[1] programme id  ARGV[2] spec JSON without "at" (ends with '}')  ARGV[3] actor
-- (+ declaration ask, act last; see lua_include/declared.lua, guichet.audit's audit.lua)
-- Returns {code, detail}   code: 'created' | 'updated' (detail: at, µs) | 'public_fixed'
-- (detail: the programme's public)
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local now = redis.call('TIME')
local at = now[1] .. string.format('%06d', tonumber(now[2]))
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = cjson.decode(ARGV[2])
local code = 'created'
if old then
  local was = cjson.decode(old)
  if was.public ~= new.public then return {'public_fixed', was.public} end
  code = 'updated'
end
redis.call('HSET', KEYS[1], ARGV[1], string.sub(ARGV[2], 1, -2) .. ',"at":' .. at .. '}')
redis.call('XADD', KEYS[2], '*', 'act', 'programme_' .. code, 'programme', ARGV[1],
  'tickets', '0', 'by', ARGV[3], 'at', at)
audit_write(code)
return {code, at}
