-- Release an account's hold: its seats go back to stock at once.
-- KEYS[1] holds  KEYS[2] stock  KEYS[3] held  KEYS[4] usage  KEYS[5] expiries
-- ARGV[1] hold id  ARGV[2] account
-- Returns {code, record}   code: 'ok' | 'not_found' | 'confirmed' | 'expired' | 'released'
--!include give_back.lua
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'not_found', ''} end
local r = cjson.decode(raw)
if r.account ~= ARGV[2] then return {'not_found', ''} end
if r.state ~= 'held' then return {r.state, raw} end
give_back(KEYS[2], KEYS[3], KEYS[4], r)
redis.call('ZREM', KEYS[5], ARGV[1])
r.state = 'released'
raw = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], raw)
return {'ok', raw}
