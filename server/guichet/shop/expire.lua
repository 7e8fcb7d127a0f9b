-- Return expired holds to stock: only the head of the expiry queue is read (ZRANGEBYSCORE up
-- to now, at most ARGV[1] holds), so the cost follows the expiries, not the holds.
-- KEYS[1] expiries  KEYS[2] holds  KEYS[3] stock  KEYS[4] held  KEYS[5] usage
-- ARGV[1] batch
-- Returns the number of holds expired
--!include give_back.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now),
  'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  local raw = redis.call('HGET', KEYS[2], id)
  if raw then
    local r = cjson.decode(raw)
    if r.state == 'held' then
      give_back(KEYS[3], KEYS[4], KEYS[5], r)
      r.state = 'expired'
      redis.call('HSET', KEYS[2], id, cjson.encode(r))
    end
  end
  redis.call('ZREM', KEYS[1], id)
end
return #due
