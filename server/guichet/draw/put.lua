-- Create or replace a draw's spec, refused once the draw is committed (its rules are then
-- fixed: the commitment was published against them).
-- KEYS[1] cfg   ARGV: field, value, field, value, ...
-- Returns {code, added}   code: 'ok' | 'committed'
if redis.call('HEXISTS', KEYS[1], 'commitment') == 1 then return {'committed', 0} end
local added = redis.call('HSET', KEYS[1], unpack(ARGV))
return {'ok', added}
