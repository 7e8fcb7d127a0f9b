-- Is an account's purchase window for a sale open now? (the draw's own use of the fragment
-- the shop's hold script includes)
-- KEYS[1] sale windows   ARGV[1] account
-- Returns {state, starts_us, ends_us}   state: 'open' | 'before' | 'after' | 'none'
--!include window_check.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state, starts, ends = window_state(KEYS[1], ARGV[1], now)
return {state, starts, ends}
