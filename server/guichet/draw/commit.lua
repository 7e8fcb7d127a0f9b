-- Commit to a draw's secret seed: store sha256(seed) and the sealed seed, once, before the
-- registration close (Redis TIME decides).
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   ARGV[1] commitment (hex)   ARGV[2] sealed seed
-- (+ audit chain key / act last, see audit.lua; an 'exists' writes no record)
-- Returns {code, commitment, committed_us, closes_us}
--   code: 'ok' | 'exists' (the first commitment is returned) | 'closed' | 'unknown'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = redis.call('HMGET', KEYS[1], 'closes_us', 'commitment', 'committed_us')
if not c[1] then return {'unknown', '', 0, 0} end
if c[2] then return {'exists', c[2], c[3], c[1]} end
if now >= tonumber(c[1]) then return {'closed', '', 0, c[1]} end
local at = string.format('%d', now)
redis.call('HSET', KEYS[1], 'commitment', ARGV[1], 'committed_us', at, 'sealed_seed', ARGV[2])
audit_write('committed')
return {'ok', ARGV[1], at, c[1]}
