-- Fragment: the room's grace clock (tick.lua and admit.lua time calls on it). It runs with
-- Redis TIME except while the room rejects (mode reject: nobody may be admitted), so a number
-- called before a rejection keeps the rest of its grace after it instead of lapsing unused.
-- State fields: 'held_us' (µs spent rejecting in periods that ended) and 'reject_since' (µs,
-- while one lasts; tick.lua opens and closes the periods). Include with
-- `--!include lua_include/grace_clock.lua`; grace_clock(state_key, now) -> the clock's µs.
local function grace_clock(state_key, now)
  local h = redis.call('HMGET', state_key, 'held_us', 'reject_since')
  local clock = now - tonumber(h[1] or '0')
  if h[2] then clock = clock - (now - tonumber(h[2])) end
  return clock
end
