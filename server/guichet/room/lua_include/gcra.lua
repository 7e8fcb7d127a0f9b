-- Fragment: GCRA rate limit (the only one in Guichet; join.lua includes it).
-- Include with `--!include lua_include/gcra.lua`. A bucket key holds the subject's theoretical
-- arrival time (TAT, µs); `interval` is the emission interval in µs (period / rate) and `burst`
-- how many requests may pass at once. Time is the caller's Redis TIME (µs), so every worker
-- agrees on one clock.
-- gcra_check(key, now, interval, burst) -> new_tat, 0 when one more request may pass now,
--   else nil, retry_after_us. Nothing is written: a caller checking several limits charges
--   them only when all pass.
-- gcra_charge(key, new_tat, now) stores the TAT; the key expires when the bucket is full again.
local function gcra_check(key, now, interval, burst)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then return nil, allow_at - now end
  return new_tat, 0
end

local function gcra_charge(key, new_tat, now)
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
end
