-- Read an account's entry and whether the draw has run (one step on the draw's slot).
-- KEYS[1] cfg   KEYS[2] entries bucket   ARGV[1] account
-- Returns {entry or '', ran_us or '', spec or ''}
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return {'', '', ''} end
local c = redis.call('HMGET', KEYS[1], 'ran_us', 'spec')
return {entry, c[1] or '', c[2] or ''}
