-- An operator invites a group leader (an account) into a new group of its programme: one
-- group per id, one group per leader in a programme. The same invitation again is answered
-- as it is (idempotent).
-- KEYS[1] programmes   KEYS[2] groups:<P>   KEYS[3] leaders:<P>
-- ARGV[1] programme   ARGV[2] group   ARGV[3] leader account   ARGV[4] actor
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, the group's JSON ('' when refused)}
--   code: 'created' | 'again' | 'no_programme' | 'group_exists' (another leader)
--         | 'leader_busy' (the account leads another group of the programme)
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'no_programme', ''} end
local led = redis.call('HGET', KEYS[3], ARGV[3])
local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing then
  if led == ARGV[2] then return {'again', existing} end
  return {'group_exists', ''}
end
if led then return {'leader_busy', ''} end
local value = '{"leader":' .. cjson.encode(ARGV[3]) .. ',"mobility_needs":0,"by":'
  .. cjson.encode(ARGV[4]) .. ',"at":' .. string.format('%d', now) .. '}'
redis.call('HSET', KEYS[2], ARGV[2], value)
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
audit_write('created')
return {'created', value}
