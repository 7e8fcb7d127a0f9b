-- Hold seats for an account, all or nothing, in one atomic step: the idempotency key, the
-- sale's phase, the sale's purchase period and the account's purchase window (Redis TIME),
-- its quotas counting held and sold tickets (per session: pack_max_per_session in the packs
-- phase, max_per_session[_limited] in the singles phase), and every item's stock. A pack's
-- composition (3 tickets in 3 sport sessions) is checked before, by model.check_shape. On
-- success the seats move from stock to held for the sale's hold_ttl and the hold is queued
-- for expiry; otherwise nothing changes. Either way the answer is kept under the idempotency
-- key and replayed for the same request.
-- KEYS[1] cfg (opens_us, closes_us: the purchase period in µs, '' = unbounded)  KEYS[2] stock
-- KEYS[3] held  KEYS[4] usage  KEYS[5] holds  KEYS[6] expiries
-- KEYS[7] windows:<phase>  KEYS[8] idempotency key  KEYS[9] limited sessions (set)
-- ARGV[1] account  ARGV[2] account tag  ARGV[3] new hold id  ARGV[4] request fingerprint
-- ARGV[5] idempotency ttl s  ARGV[6] packs (0: singles)
-- ARGV[7] the items, one per line: "<field> <session> <quantity>\n" (one argument: cheaper to
--         send than three per item)
-- ARGV[8] the version of the rules the caller checked the request against ('' = no check)
-- Returns the answer as JSON: {code = 'ok', hold, expires_us} or a refusal {code, ...}:
--   no_sale | idempotency_mismatch | phase | period (opens_us, closes_us; absent: unbounded)
--   | window | max_tickets | max_packs
--   | max_per_session | unknown_item | stock
--   or {code = 'stale', version}: the rules changed since the caller read them; nothing is
--   kept under the idempotency key (the caller re-reads the rules and asks again)
-- A replayed 'ok' also carries `record`: the hold as stored now (it may have been released,
-- expired or confirmed since), so the replay answers its current state.
--!include guichet.draw:window_check.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prior = redis.call('GET', KEYS[8])
if prior then
  local p = cjson.decode(prior)
  if p.fingerprint ~= ARGV[4] then
    return cjson.encode({code = 'idempotency_mismatch'})
  end
  if p.code == 'ok' then
    p.record = redis.call('HGET', KEYS[5], p.hold) or nil
    return cjson.encode(p)
  end
  return prior
end
local function answer(a)
  a.fingerprint = ARGV[4]
  local s = cjson.encode(a)
  redis.call('SET', KEYS[8], s, 'EX', ARGV[5])
  return s
end
local c = redis.call('HMGET', KEYS[1], 'phase', 'window_required', 'hold_ttl_us', 'max_tickets',
  'max_packs', 'max_per_session', 'max_per_session_limited', 'version', 'pack_max_per_session',
  'opens_us', 'closes_us')
if not c[1] then return cjson.encode({code = 'no_sale'}) end
if ARGV[8] ~= '' and (c[8] or '0') ~= ARGV[8] then
  return cjson.encode({code = 'stale', version = tonumber(c[8] or '0')})
end
local packs = tonumber(ARGV[6])
if (packs > 0) ~= (c[1] == 'packs') then return answer({code = 'phase', phase = c[1]}) end
local function bound(x) if x and x ~= '' then return x end return nil end
local opens, closes = bound(c[10]), bound(c[11])
if (opens and now < tonumber(opens)) or (closes and now >= tonumber(closes)) then
  return answer({code = 'period', opens_us = opens, closes_us = closes})
end
if c[2] == '1' then
  local state, starts, ends = window_state(KEYS[7], ARGV[1], now)
  if state ~= 'open' then
    return answer({code = 'window', state = state, starts_us = string.format('%d', starts),
      ends_us = string.format('%d', ends)})
  end
end
local tag = ARGV[2]
local items, sessions, order, tickets = {}, {}, {}, 0
for field, session, quantity in string.gmatch(ARGV[7], '(%S+) (%S+) (%d+)\n') do
  local q = tonumber(quantity)
  items[#items + 1] = {field, q, session}
  if not sessions[session] then order[#order + 1] = session end
  sessions[session] = (sessions[session] or 0) + q
  tickets = tickets + q
end
local u = redis.call('HMGET', KEYS[4], tag .. ':t', tag .. ':p')
local have_t, have_p = tonumber(u[1] or '0'), tonumber(u[2] or '0')
if have_t + tickets > tonumber(c[4]) then
  return answer({code = 'max_tickets', have = have_t, limit = tonumber(c[4])})
end
if packs > 0 and have_p + packs > tonumber(c[5]) then
  return answer({code = 'max_packs', have = have_p, limit = tonumber(c[5])})
end
for _, s in ipairs(order) do
  local limit = tonumber(c[9] or '6')  -- packs phase (rules from before the field: 6)
  if packs == 0 then
    limit = tonumber(c[6])
    if redis.call('SISMEMBER', KEYS[9], s) == 1 then limit = tonumber(c[7]) end
  end
  local have = tonumber(redis.call('HGET', KEYS[4], tag .. ':s:' .. s) or '0')
  if have + sessions[s] > limit then
    return answer({code = 'max_per_session', item = s, have = have, limit = limit})
  end
end
for _, it in ipairs(items) do
  local available = redis.call('HGET', KEYS[2], it[1])
  if not available then return answer({code = 'unknown_item', item = it[1]}) end
  if tonumber(available) < it[2] then
    return answer({code = 'stock', item = it[1], available = tonumber(available)})
  end
end
for _, it in ipairs(items) do
  redis.call('HINCRBY', KEYS[2], it[1], -it[2])
  redis.call('HINCRBY', KEYS[3], it[1], it[2])
  redis.call('HINCRBY', KEYS[4], tag .. ':s:' .. it[3], it[2])
end
redis.call('HINCRBY', KEYS[4], tag .. ':t', tickets)
redis.call('HINCRBY', KEYS[4], tag .. ':h', tickets)
if packs > 0 then redis.call('HINCRBY', KEYS[4], tag .. ':p', packs) end
local expires = string.format('%d', now + tonumber(c[3]))
redis.call('HSET', KEYS[5], ARGV[3], cjson.encode({account = ARGV[1], tag = tag, items = items,
  tickets = tickets, packs = packs, expires_us = expires, state = 'held'}))
redis.call('ZADD', KEYS[6], expires, ARGV[3])
return answer({code = 'ok', hold = ARGV[3], expires_us = expires})
