-- Withdraw an account's entry, allowed until registration closes.
-- KEYS[1] cfg   KEYS[2] entries   KEYS[3] counts
-- ARGV[1] account
-- Returns {code, closes_us}   code: 'ok' | 'none' | 'closed' | 'unknown'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local closes = redis.call('HGET', KEYS[1], 'closes_us')
if not closes then return {'unknown', 0} end
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return {'none', closes} end
if now >= tonumber(closes) then return {'closed', closes} end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], string.match(entry, '^([^:]+):'), -1)
return {'ok', closes}
