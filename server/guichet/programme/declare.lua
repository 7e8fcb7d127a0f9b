-- File an agent's conflict-of-interest declaration for a games (AFA, seed 002 §3.1): it
-- replaces the agent's previous one and holds until ``until`` (Redis TIME + the validity).
-- KEYS[1] declarations (+ audit chain key last, see guichet.audit's audit.lua)
-- ARGV[1] the agent (token subject)  ARGV[2] conflicts JSON (a list)  ARGV[3] validity µs
-- (+ act last)
-- Returns {code, at µs, until µs}   code: 'filed' | 'replaced'
--!include guichet.audit:lua_include/audit.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = string.format('%d', now)
local till = string.format('%d', now + tonumber(ARGV[3]))
local code = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 and 'replaced' or 'filed'
redis.call('HSET', KEYS[1], ARGV[1],
  '{"at":' .. at .. ',"until":' .. till .. ',"conflicts":' .. ARGV[2] .. '}')
audit_write(code)
return {code, at, till}
