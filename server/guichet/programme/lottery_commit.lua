-- Commit a lottery to its secret seed before its candidate list closes: the commitment
-- (sha256 of the seed) is published, the seed kept sealed (draw/seal.py).
-- KEYS[1] lottery:P:L
-- ARGV[1] commitment hex  ARGV[2] sealed seed (hex)  ARGV[3] actor
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, committed_at µs}  code: 'ok' | 'no_lottery' | 'committed' (already) | 'closed'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local l = redis.call('HMGET', KEYS[1], 'state', 'closes_at', 'committed_at')
if not l[1] then return {'no_lottery', ''} end
if l[1] ~= 'open' then return {'committed', l[3] or ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now >= tonumber(l[2]) then return {'closed', ''} end
local at = string.format('%d', now)
redis.call('HSET', KEYS[1], 'state', 'committed', 'commitment', ARGV[1], 'seed', ARGV[2],
  'committed_at', at, 'committed_by', ARGV[3])
audit_write('committed')
return {'ok', at}
