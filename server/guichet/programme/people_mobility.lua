-- Set a group's mobility needs: one count for the whole group, never per person (CNIL
-- recommendation 2). By the group's leader or the programme's operator.
-- KEYS[1] groups:<P>   KEYS[2] leaders:<P>
-- ARGV[1] group   ARGV[2] count   ARGV[3] actor   ARGV[4] the leader's account ('' operator)
-- Returns {code, the group's JSON ('' when refused)}: 'ok' | 'no_group' | 'not_your_group'
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
return {'ok', value}
