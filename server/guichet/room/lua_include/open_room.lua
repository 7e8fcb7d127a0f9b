-- Fragment: open a room when due, once (join.lua and tick.lua both include it: whichever
-- runs first at or after opens_at opens the room).
-- Include with `--!include lua_include/open_room.lua`; call open_room(state_key, now, opens,
-- seed, mode): the pre-queue is frozen, the shuffle seed kept, and numbers continue at N (the
-- pre-queue size). The queueing mode in force is kept as 'open_mode': it alone decides the
-- pre-queue's order, whatever the mode becomes later. Returns 1 when this call opened the
-- room, else 0.
local function open_room(state_key, now, opens, seed, mode)
  if now < opens or redis.call('HSETNX', state_key, 'opened_us', now) == 0 then return 0 end
  local pre = redis.call('HGET', state_key, 'pre') or '0'
  redis.call('HSET', state_key, 'seed', seed, 'next', pre, 'last_us', now, 'open_mode',
    mode or 'shuffle-then-fifo')
  return 1
end
