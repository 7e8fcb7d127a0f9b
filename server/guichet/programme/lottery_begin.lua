-- May this lottery run now? Committed, and its candidate list closed (Redis TIME).
-- KEYS[1] lottery:P:L
-- Returns {code, now µs}  code: 'ok' | 'no_lottery' | 'not_committed' | 'open' (not closed
-- yet) | 'run' (already ran)
local l = redis.call('HMGET', KEYS[1], 'state', 'closes_at')
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
if not l[1] then return {'no_lottery', now} end
if l[1] == 'run' then return {'run', now} end
if l[1] ~= 'committed' then return {'not_committed', now} end
if tonumber(now) < tonumber(l[2]) then return {'open', now} end
return {'ok', now}
