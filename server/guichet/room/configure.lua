-- Configure a room: create, replace, or patch some fields of its spec.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   (+ audit chain key / act last, see audit.lua)
-- ARGV[1] 'create' (fails if it exists) | 'put' (create or replace) | 'patch' (must exist)
-- ARGV[2..] field, value pairs (strings; opens_us/closes_us are integer µs)
-- After the change, closes_us must stay after opens_us, or nothing changes.
-- Returns {code[, the queueing mode before the change ('' for none)]}
--   code: 'created' | 'updated' | 'exists' | 'unknown' | 'bad_window'
local exists = redis.call('EXISTS', KEYS[1]) == 1
local op = ARGV[1]
if op == 'create' and exists then return {'exists'} end
if op == 'patch' and not exists then return {'unknown'} end
local fields = {}
for i = 2, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
local opens = tonumber(fields['opens_us'] or redis.call('HGET', KEYS[1], 'opens_us'))
local closes = tonumber(fields['closes_us'] or redis.call('HGET', KEYS[1], 'closes_us'))
if opens and closes and closes <= opens then return {'bad_window'} end
local previous = redis.call('HGET', KEYS[1], 'mode') or ''
if op == 'put' and exists then
  local version = redis.call('HGET', KEYS[1], 'version')
  redis.call('DEL', KEYS[1])
  if version then redis.call('HSET', KEYS[1], 'version', version) end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('HINCRBY', KEYS[1], 'version', 1)  -- workers reload the spec when it moves
local code = exists and 'updated' or 'created'
audit_write(code)
return {code, previous}
