-- Fragment: the purchase-window check, for scripts in a sale's slot ({sale:<id>}).
-- Include it with a line `--!include window_check.lua` (guichet.draw), then call
--   local state, starts_us, ends_us = window_state(windows_key, account, now_us)
-- state: 'open' (starts <= now < ends), 'before', 'after', or 'none' (no window). The windows
-- hash maps account -> "<starts µs>:<ends µs>:<draw>:<wave>" and is written once per account
-- by wave.lua (HSETNX), so a window never changes once given.
local function window_state(windows_key, account, now)
  local w = redis.call('HGET', windows_key, account)
  if not w then return 'none', 0, 0 end
  local starts, ends = string.match(w, '^(%d+):(%d+):')
  starts, ends = tonumber(starts), tonumber(ends)
  if now < starts then return 'before', starts, ends end
  if now >= ends then return 'after', starts, ends end
  return 'open', starts, ends
end
