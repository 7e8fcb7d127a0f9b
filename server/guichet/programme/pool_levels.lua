-- One consistent read of a games' counts for the audit: loaded, pool, assigned, used, and
-- alloc:<P> of every programme the caller named. 'stale' when the programmes hash no longer
-- lists exactly those programmes (one was created meanwhile): the caller reads again.
-- KEYS[1] loaded  KEYS[2] pool  KEYS[3] assigned  KEYS[4] used  KEYS[5] programmes
-- KEYS[6..] alloc:<P> for each programme of ARGV, in order
-- ARGV the programme ids
-- Returns {'ok', loaded, pool, assigned, used, alloc1, …} (each a flat field/value list) |
-- {'stale'}
if redis.call('HLEN', KEYS[5]) ~= #ARGV then return {'stale'} end
for _, p in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[5], p) == 0 then return {'stale'} end
end
local out = {'ok'}
for i = 1, #KEYS do
  if i ~= 5 then out[#out + 1] = redis.call('HGETALL', KEYS[i]) end
end
return out
