-- Register an account for a draw: one entry per account, only while registration is open,
-- and a restricted stratum only for its members (decided here, atomically with the write).
-- KEYS[1] cfg   KEYS[2] entries (account -> "<stratum>:<registered µs>")   KEYS[3] counts
-- KEYS[4..] the member set of each restricted stratum, in the order of ARGV[3]
-- ARGV[1] account   ARGV[2] claimed stratum ('' = the highest stratum the account is a member
-- of, else the draw's default)   ARGV[3] the restricted strata the caller built KEYS[4..] for,
-- comma-separated (must equal the cfg's)   ARGV[4] the restricted strata the account's token
-- grants (its groups claim), comma-separated
-- A repeat returns the first entry, even after the close (idempotent under retries).
-- Returns {code, entry, opens_us, closes_us, ran ('1' once the draw has run, else '0')}
--   code: 'created' | 'again' | 'unknown' | 'not_open' | 'closed' | 'bad_stratum'
--         | 'not_a_member' | 'stale' (entry: the cfg's restricted strata; ask again with them)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = redis.call('HMGET', KEYS[1], 'opens_us', 'closes_us', 'strata', 'default_stratum',
  'ran_us', 'restricted')
if not c[1] then return {'unknown', '', 0, 0, '0'} end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {'again', existing, c[1], c[2], c[5] and '1' or '0'} end
if (c[6] or '') ~= ARGV[3] then return {'stale', c[6] or '', c[1], c[2], '0'} end
if now < tonumber(c[1]) then return {'not_open', '', c[1], c[2], '0'} end
if now >= tonumber(c[2]) then return {'closed', '', c[1], c[2], '0'} end
local function listed(list, name)
  return string.find(',' .. list .. ',', ',' .. name .. ',', 1, true) ~= nil
end
local function member(i, name)
  return listed(ARGV[4], name) or redis.call('SISMEMBER', KEYS[3 + i], ARGV[1]) == 1
end
local stratum = ARGV[2]
if stratum == '' then
  stratum = c[4]
  local i = 0
  for name in string.gmatch(ARGV[3], '[^,]+') do
    i = i + 1
    if member(i, name) then stratum = name break end
  end
else
  if not listed(c[3], stratum) then return {'bad_stratum', '', c[1], c[2], '0'} end
  local i = 0
  for name in string.gmatch(ARGV[3], '[^,]+') do
    i = i + 1
    if name == stratum and not member(i, name) then
      return {'not_a_member', '', c[1], c[2], '0'}
    end
  end
end
local entry = stratum .. ':' .. string.format('%d', now)
redis.call('HSET', KEYS[2], ARGV[1], entry)
redis.call('HINCRBY', KEYS[3], stratum, 1)
return {'created', entry, c[1], c[2], '0'}
