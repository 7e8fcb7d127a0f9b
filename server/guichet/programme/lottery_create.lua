-- Create a programme's lottery for one of its allocations (session x category), open until
-- closes_at (µs, in the future by Redis TIME).
-- KEYS[1] lottery:P:L  KEYS[2] programmes  KEYS[3] sessions
-- ARGV[1] P  ARGV[2] session  ARGV[3] category  ARGV[4] closes_at µs  ARGV[5] actor
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns code: 'ok' | 'exists' | 'no_programme' | 'no_session' | 'closes_in_past'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 'no_programme' end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return 'no_session' end
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if tonumber(ARGV[4]) <= now then return 'closes_in_past' end
redis.call('HSET', KEYS[1], 'state', 'open', 'session', ARGV[2], 'category', ARGV[3],
  'closes_at', ARGV[4], 'cursor', 0, 'by', ARGV[5], 'at', string.format('%d', now))
audit_write('created')
return 'ok'
