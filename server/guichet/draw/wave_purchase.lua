-- The draw's side of a confirm (included by the shop's confirm.lua, which runs in the sale's
-- slot): record the purchase against the wave whose window the buyer had, so that wave sizing
-- learns from it (waves.py). The window is the account's one for the hold's phase
-- ("<starts µs>:<ends µs>:<draw>:<wave>"); without one (a sale that needs no window) nothing
-- is recorded. A buyer counts once per phase: the first confirm marks the usage hash.
-- record_purchase(windows key, purchases key, usage key, account, account tag, phase, tickets)
--   purchases: "<draw>:<wave>:b" buyers, "<draw>:<wave>:t" tickets
local function record_purchase(windows, purchases, usage, account, tag, phase, tickets)
  local w = redis.call('HGET', windows, account)
  if not w then return end
  local draw, wave = string.match(w, '^%d+:%d+:(.+):(%d+)$')
  if not draw then return end
  local at = draw .. ':' .. wave .. ':'
  if redis.call('HSETNX', usage, tag .. ':b:' .. phase, at) == 1 then
    redis.call('HINCRBY', purchases, at .. 'b', 1)
  end
  redis.call('HINCRBY', purchases, at .. 't', tickets)
end
