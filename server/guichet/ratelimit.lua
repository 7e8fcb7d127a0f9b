-- GCRA rate limit: may one more request of this subject pass now?
-- KEYS[1]  the subject's bucket (keys.rate_limit), holds the theoretical arrival time (µs)
-- ARGV[1]  emission interval in µs (period / rate), > 0
-- ARGV[2]  burst: how many requests may pass at once, >= 1
-- ARGV[3]  cost of this request in requests, >= 1
-- Time comes from Redis TIME so every worker agrees on one clock.
-- Returns {allowed (1|0), retry_after_us, remaining}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  local remaining = math.floor((now - (tat - burst * interval)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, allow_at - now, remaining}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, 0, math.floor((now - allow_at) / interval)}
