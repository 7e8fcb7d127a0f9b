-- Set a group's mobility needs: one count for the whole group, never per person (CNIL
-- recommendation 2). By the group's leader or the programme's operator.
-- KEYS[1] groups:<P>   KEYS[2] leaders:<P>
-- ARGV[1] group   ARGV[2] count   ARGV[3] actor   ARGV[4] the leader's account ('' operator)
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, the group's JSON ('' when refused)}: 'ok' | 'no_group' | 'not_your_group'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if ARGV[4] ~= '' and redis.call('HGET', KEYS[2], ARGV[4]) ~= ARGV[1] then
  return {'not_your_group', ''}
end
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then return {'no_group', ''} end
local leader = cjson.decode(existing).leader
local value = '{"leader":' .. cjson.encode(leader) .. ',"mobility_needs":'
  .. string.format('%d', tonumber(ARGV[2])) .. ',"by":' .. cjson.encode(ARGV[3])
  .. ',"at":' .. string.format('%d', now) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], value)
audit_write('updated')
return {'ok', value}
