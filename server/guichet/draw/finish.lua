-- Publish a draw's result once every ranking chunk is stored: the transcript and the count.
-- No audit record: the run's record was written by begin.lua, its first script.
-- KEYS[1] cfg   KEYS[2] ranking (chunk -> ids)
-- ARGV[1] chunks expected   ARGV[2] ranked entries   ARGV[3] transcript JSON
-- ARGV[4] the public JWK that signed it (published for good at /.well-known/draw-jwks.json)
-- Returns {code, detail}   code: 'ok' | 'ran' (detail: the published transcript)
--   | 'not_started' | 'incomplete' (detail: chunks stored)
local c = redis.call('HMGET', KEYS[1], 'run_started_us', 'ran_us', 'transcript')
if c[2] then return {'ran', c[3]} end
if not c[1] then return {'not_started', ''} end
local stored = redis.call('HLEN', KEYS[2])
if stored ~= tonumber(ARGV[1]) then return {'incomplete', tostring(stored)} end
redis.call('HSET', KEYS[1], 'ran_us', c[1], 'ranked', ARGV[2], 'transcript', ARGV[3],
  'signing_jwk', ARGV[4])
return {'ok', ARGV[3]}
