-- Heartbeat: the admitted account is still shopping; push its idle expiry forward.
-- KEYS[1] cfg   KEYS[2] active
-- ARGV[1] account
-- Returns {code, expires_us}   code: 'ok' | 'gone' (expired or left) | 'unknown'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local idle = redis.call('HGET', KEYS[1], 'idle_timeout_s')
if not idle then return {'unknown', 0} end
local expires = now + tonumber(idle) * 1000000
if redis.call('ZADD', KEYS[2], 'XX', 'CH', expires, ARGV[1]) == 0 then
  if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {'gone', 0} end
end
return {'ok', expires}
