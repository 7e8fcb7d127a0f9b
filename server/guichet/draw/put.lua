-- Create or replace a draw's spec, refused once the draw is committed (its rules are then
-- fixed: the commitment was published against them), and refused when the new strata leave
-- out a stratum that entries still name (the run could never rank them).
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   KEYS[2] counts (stratum -> entries)   ARGV: field, value, field, value, ...
-- (one of the fields is 'strata', comma-separated)   (+ audit chain key / act last, see audit.lua)
-- Returns {code, added, detail}   code: 'ok' | 'committed'
--   | 'orphans' (added: the entries of the stratum named by detail)
if redis.call('HEXISTS', KEYS[1], 'commitment') == 1 then return {'committed', 0, ''} end
local strata = ''
for i = 1, #ARGV, 2 do
  if ARGV[i] == 'strata' then strata = ARGV[i + 1] end
end
local counts = redis.call('HGETALL', KEYS[2])
for i = 1, #counts, 2 do
  local n = tonumber(counts[i + 1])
  if n > 0 and not string.find(',' .. strata .. ',', ',' .. counts[i] .. ',', 1, true) then
    return {'orphans', n, counts[i]}
  end
end
local existed = redis.call('EXISTS', KEYS[1]) == 1
local added = redis.call('HSET', KEYS[1], unpack(ARGV))
audit_write(existed and 'replaced' or 'created')
return {'ok', added, ''}
