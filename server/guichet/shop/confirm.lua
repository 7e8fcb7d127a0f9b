-- Confirm a hold: its seats move from held to sold (the caller then waits for the AOF fsync
-- before answering). Idempotent: a confirmed hold answers 'again' after rewriting its record
-- unchanged — a write of this call, so the caller's WAITAOF waits for an fsync at or past this
-- point of the AOF, which covers the purchase written by an earlier call (whose own wait may
-- have timed out). A hold past its expiry is expired here and then (its seats back in stock).
-- KEYS[1] holds  KEYS[2] stock  KEYS[3] held  KEYS[4] sold  KEYS[5] usage  KEYS[6] expiries
-- KEYS[7] windows:packs  KEYS[8] windows:singles  KEYS[9] purchases (per wave, for sizing)
-- KEYS[10] bought (the account's confirmed hold ids: its e-tickets derive from them)
-- ARGV[1] hold id  ARGV[2] account  ARGV[3] payment reference
-- Returns {code, record}   code: 'ok' | 'again' | 'not_found' | 'expired' | 'released'
--!include give_back.lua
--!include guichet.draw:wave_purchase.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'not_found', ''} end
local r = cjson.decode(raw)
if r.account ~= ARGV[2] then return {'not_found', ''} end
if r.state == 'confirmed' then
  redis.call('HSET', KEYS[1], ARGV[1], raw)
  return {'again', raw}
end
if r.state ~= 'held' then return {r.state, raw} end
redis.call('ZREM', KEYS[6], ARGV[1])
if now >= tonumber(r.expires_us) then
  give_back(KEYS[2], KEYS[3], KEYS[5], r)
  r.state = 'expired'
  raw = cjson.encode(r)
  redis.call('HSET', KEYS[1], ARGV[1], raw)
  return {'expired', raw}
end
for _, it in ipairs(r.items) do
  redis.call('HINCRBY', KEYS[3], it[1], -it[2])
  redis.call('HINCRBY', KEYS[4], it[1], it[2])
end
redis.call('HINCRBY', KEYS[5], r.tag .. ':h', -r.tickets)
local phase = r.packs > 0 and 'packs' or 'singles'
record_purchase(r.packs > 0 and KEYS[7] or KEYS[8], KEYS[9], KEYS[5], r.account, r.tag, phase,
  r.tickets)
r.state = 'confirmed'
r.payment_reference = ARGV[3]
r.confirmed_us = string.format('%d', now)  -- a string: cjson would round 16 digits
raw = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], raw)
redis.call('SADD', KEYS[10], ARGV[1])
return {'ok', raw}
