-- Release one batch of a wave of purchase windows: the next ranked entrants (passed by the
-- caller, read from the stored ranking at the cursor) get [starts, ends) for the sale, once
-- each (HSETNX: an account never gets two windows for a sale, a window never changes), and a
-- notice due at starts - notice in the outbox stream. The cursor makes batches exactly-once:
-- a batch whose expected cursor is not the stored one changes nothing.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] waves (this draw's wave state)   KEYS[2] sale windows   KEYS[3] sale outbox
-- ARGV[1] wave number   ARGV[2] expected cursor   ARGV[3] target cursor (end of the wave)
-- ARGV[4] starts µs   ARGV[5] ends µs   ARGV[6] notice µs   ARGV[7] '1' = allow short notice
-- ARGV[8] draw   ARGV[9..] account ids
-- (+ audit chain key / act last, see audit.lua: the release's first batch writes its one
-- record, 'released' if it completes the wave, else 'started'; later batches pass no act)
-- Returns {code, cursor, assigned, skipped, detail}
--   code: 'ok' | 'done' (the wave is complete) | 'moved' (cursor differs)
--         | 'pending' (detail: the unfinished wave "n:target:starts:ends") | 'stale' (detail:
--         waves released) | 'short_notice' (detail: now µs)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'cursor', 'waves', 'pending')
local cursor, waves = tonumber(s[1] or '0'), tonumber(s[2] or '0')
local n = tonumber(ARGV[1])
local target, starts, ends = ARGV[3], ARGV[4], ARGV[5]
if s[3] then
  local pn, ptarget, pstarts, pends = string.match(s[3], '^(%d+):(%d+):(%d+):(%d+)$')
  if tonumber(pn) ~= n then return {'pending', cursor, 0, 0, s[3]} end
  target, starts, ends = ptarget, pstarts, pends
else
  if n ~= waves + 1 then return {'stale', cursor, 0, 0, tostring(waves)} end
  if ARGV[7] ~= '1' and tonumber(starts) < now + tonumber(ARGV[6]) then
    return {'short_notice', cursor, 0, 0, string.format('%d', now)}
  end
end
if cursor ~= tonumber(ARGV[2]) then return {'moved', cursor, 0, 0, ''} end
if not s[3] then  -- every check passed: the wave starts (refusals change nothing)
  redis.call('HSET', KEYS[1], 'pending', n .. ':' .. target .. ':' .. starts .. ':' .. ends)
  redis.pcall('XGROUP', 'CREATE', KEYS[3], 'mailer', '0', 'MKSTREAM')
end
local due = string.format('%d', tonumber(starts) - tonumber(ARGV[6]))
local window = starts .. ':' .. ends .. ':' .. ARGV[8] .. ':' .. n
local assigned, skipped = 0, 0
for i = 9, #ARGV do
  if redis.call('HSETNX', KEYS[2], ARGV[i], window) == 1 then
    redis.call('XADD', KEYS[3], '*', 'account', ARGV[i], 'draw', ARGV[8], 'wave', n,
      'starts_us', starts, 'ends_us', ends, 'due_us', due)
    assigned = assigned + 1
  else
    skipped = skipped + 1
  end
end
cursor = cursor + #ARGV - 8
redis.call('HSET', KEYS[1], 'cursor', cursor)
redis.call('HINCRBY', KEYS[1], 'assigned', assigned)
redis.call('HINCRBY', KEYS[1], 'w' .. n .. ':assigned', assigned)
if cursor >= tonumber(target) then
  redis.call('HSET', KEYS[1], 'waves', n, 'w' .. n, starts .. ':' .. ends .. ':' .. target)
  redis.call('HDEL', KEYS[1], 'pending')
  audit_write('released')
  return {'done', cursor, assigned, skipped, ''}
end
audit_write('started')
return {'ok', cursor, assigned, skipped, ''}
