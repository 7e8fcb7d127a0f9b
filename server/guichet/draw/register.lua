-- Register an account for a draw: one entry per account, only while registration is open.
-- KEYS[1] cfg   KEYS[2] entries (account -> "<stratum>:<registered µs>")   KEYS[3] counts
-- ARGV[1] account   ARGV[2] claimed stratum ('' = the draw's default)
-- A repeat returns the first entry, even after the close (idempotent under retries).
-- Returns {code, entry, opens_us, closes_us, ran ('1' once the draw has run, else '0')}
--   code: 'created' | 'again' | 'unknown' | 'not_open' | 'closed' | 'bad_stratum'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = redis.call('HMGET', KEYS[1], 'opens_us', 'closes_us', 'strata', 'default_stratum',
  'ran_us')
if not c[1] then return {'unknown', '', 0, 0, '0'} end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {'again', existing, c[1], c[2], c[5] and '1' or '0'} end
if now < tonumber(c[1]) then return {'not_open', '', c[1], c[2], '0'} end
if now >= tonumber(c[2]) then return {'closed', '', c[1], c[2], '0'} end
local stratum = ARGV[2]
if stratum == '' then stratum = c[4] end
if not string.find(',' .. c[3] .. ',', ',' .. stratum .. ',', 1, true) then
  return {'bad_stratum', '', c[1], c[2], '0'}
end
local entry = stratum .. ':' .. string.format('%d', now)
redis.call('HSET', KEYS[2], ARGV[1], entry)
redis.call('HINCRBY', KEYS[3], stratum, 1)
return {'created', entry, c[1], c[2], '0'}
