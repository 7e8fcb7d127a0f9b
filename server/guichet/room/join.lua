-- Join a room's queue: one place per account; numbers unique and gap-free.
-- KEYS[1] cfg   KEYS[2] state   KEYS[3] tickets (account -> "p:<i>" | "n:<i>")
-- KEYS[4] the caller IP's join bucket   KEYS[5] the account's join bucket (GCRA, µs)
-- ARGV[1] account   ARGV[2] seed to use if this call opens the room (hex)
-- ARGV[3] per-IP interval µs   ARGV[4] per-IP burst
-- ARGV[5] per-account interval µs   ARGV[6] per-account burst
-- KEYS[6] the proof-of-work challenge's spent-nonce key   ARGV[7] the challenge's expiry, ms
--   ('' when the room needs no proof). The door's lines are one block below (challenge.py):
--   a challenge is spent once (SET NX PXAT), after the rate limits, before the 'again' check.
-- Ticket ids are "p:<i>:<joined s>" or "n:<i>:<joined s>".
-- Until the room has opened a joiner gets pre-queue index i ("p:i"); the first call at or after
-- opens_at (this script or tick.lua) opens the room: the pre-queue is frozen, the seed kept,
-- and numbers continue at N (the pre-queue size) for later arrivals ("n:i").
-- Returns {code, ticket, opened_now, retry_after_us}
--   code: 'ok' (new ticket) | 'again' (same ticket as before) | 'unknown' | 'closed' |
--         'limited_ip' | 'limited_account' | 'rejecting' (mode reject: no new ticket) |
--         'replayed' (the challenge was already spent) | 'unproven' (a new place asked with no
--         proof while the room's challenge_bits > 0; retry_after_us carries those bits)
--!include lua_include/open_room.lua
--!include lua_include/gcra.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local cfg = redis.call('HMGET', KEYS[1], 'opens_us', 'closes_us')
if not cfg[1] then return {'unknown', '', 0, 0} end
local opens, closes = tonumber(cfg[1]), tonumber(cfg[2])

-- Queueing modes (docs/architecture.md): 'reject' lets no one new in (held tickets stay).
local mode = redis.call('HGET', KEYS[1], 'mode') or 'shuffle-then-fifo'
if mode == 'reject' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  return {'rejecting', '', 0, 0}
end

-- Rate limits (GCRA, lua_include/gcra.lua): both are checked before either is charged.
local ip_tat, ip_wait = gcra_check(KEYS[4], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
if not ip_tat then return {'limited_ip', '', 0, ip_wait} end
local acct_tat, acct_wait = gcra_check(KEYS[5], now, tonumber(ARGV[5]), tonumber(ARGV[6]))
if not acct_tat then return {'limited_account', '', 0, acct_wait} end
gcra_charge(KEYS[4], ip_tat, now)
gcra_charge(KEYS[5], acct_tat, now)

-- The proof-of-work door (challenge.py): each challenge is spent once.
if ARGV[7] ~= '' then
  if not redis.call('SET', KEYS[6], '1', 'NX', 'PXAT', ARGV[7]) then
    return {'replayed', '', 0, 0}
  end
end

local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then return {'again', existing, 0, 0} end
-- No new place without a proof while the room asks for one, whatever the worker believed
-- (its spec a tick behind, or a holder's ticket shown for a place the store lost).
local bits = tonumber(redis.call('HGET', KEYS[1], 'challenge_bits') or '0') or 0
if ARGV[7] == '' and bits > 0 then return {'unproven', '', 0, bits} end
if now >= closes then return {'closed', '', 0, 0} end

local opened_now = open_room(KEYS[2], now, opens, ARGV[2], mode)

local ticket
if not redis.call('HGET', KEYS[2], 'opened_us') then
  ticket = 'p:' .. (redis.call('HINCRBY', KEYS[2], 'pre', 1) - 1)
else
  ticket = 'n:' .. (redis.call('HINCRBY', KEYS[2], 'next', 1) - 1)
end
ticket = ticket .. ':' .. math.floor(now / 1000000)
redis.call('HSET', KEYS[3], ARGV[1], ticket)
return {'ok', ticket, opened_now, 0}
