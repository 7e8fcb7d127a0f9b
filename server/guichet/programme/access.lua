-- An act of access to one beneficiary's data (a read by an operator): the read and its audit
-- record in one step, after the declaration check (lua_include/declared.lua).
-- KEYS[1] the hash read (+ declarations, audit chain key last: see the includes)
-- ARGV[1] the field ('' records the access without reading: an export that streams)
-- ARGV[2] the JSON field of the value naming the beneficiary's pseudonym ('' none)
-- (+ declaration ask, act last)
-- Returns {code, value}   code: 'ok' | 'missing' (no such field: no record)
--   | a refusal of declared.lua
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local value = ''
local more = nil
if ARGV[1] ~= '' then
  value = redis.call('HGET', KEYS[1], ARGV[1])
  if not value then return {'missing', ''} end
  if ARGV[2] ~= '' then more = {cjson.decode(value)[ARGV[2]]} end
end
local refused = declared_refusal(more)
if refused then return refused end
audit_write('read')
return {'ok', value}
