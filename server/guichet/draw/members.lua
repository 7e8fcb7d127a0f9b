-- Replace the member list of a restricted stratum with the one just built, in one step, and
-- only until the draw is committed (the entry set the commitment stands for is then fixed).
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   KEYS[2] the list being loaded (a set; absent = empty)   KEYS[3] members (set)
-- ARGV[1] stratum   (+ audit chain key / act last, see audit.lua)
-- Returns {code, members}   code: 'ok' (members: how many now) | 'unknown' (no draw)
--   | 'committed' | 'open' (the stratum is not restricted: anyone may claim it)
-- On a refusal the list being loaded is dropped and the members are unchanged.
local c = redis.call('HMGET', KEYS[1], 'strata', 'restricted', 'commitment')
local code = 'ok'
if not c[1] then
  code = 'unknown'
elseif c[3] then
  code = 'committed'
elseif not string.find(',' .. (c[2] or '') .. ',', ',' .. ARGV[1] .. ',', 1, true) then
  code = 'open'
end
if code ~= 'ok' then
  redis.call('DEL', KEYS[2])
  return {code, redis.call('SCARD', KEYS[3])}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
audit_write('loaded')
return {'ok', redis.call('SCARD', KEYS[3])}
