-- Withdrawal (seed 002 §2), until the eve of the session: the ticket is voided and, in this
-- same step, the next giveable candidate of the lottery's ranking (from its cursor, skipping
-- double-benefit holders) gets a new ticket (a notice goes out), or the seat returns to the
-- central pool when the ranking is exhausted (or the ticket came from an exception).
-- KEYS[1] tickets:P  KEYS[2] candidates:P  KEYS[3] leaders:P  KEYS[4] lottery:P:L
-- KEYS[5] ranking:P:L  KEYS[6] assigned  KEYS[7] pool  KEYS[8] benefit  KEYS[9] stats:P
-- KEYS[10] outbox  KEYS[11] groups:P  KEYS[12] sessions
-- ARGV[1] P  ARGV[2] L ('x': none)  ARGV[3] ticket id  ARGV[4] code hash or ''
-- ARGV[5] leader account or ''  ARGV[6] actor  ARGV[7] new link code  ARGV[8] its sha256 hex
-- The deadline is the session's `withdraw_until_us` (computed when the pool was loaded).
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, detail, double-benefit skips}  code: 'reassigned' (the new ticket id) |
-- 'returned' | 'unknown' | 'withdrawn' | 'used' | 'too_late'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
--!include lua_include/give.lua
--!include lua_include/holder.lua
local P = ARGV[1]
local raw = redis.call('HGET', KEYS[1], ARGV[3])
if not raw then return {'unknown', '', 0} end
local t = cjson.decode(raw)
local rec = holder(t, KEYS[2], KEYS[3], ARGV[4], ARGV[5])
if not rec then return {'unknown', '', 0} end
-- The operator's declaration (the beneficiary's and the leader's ask is ''): this person.
local refused = declared_refusal({t.person})
if refused then return refused end
if t.state == 'withdrawn' or t.state == 'used' then return {t.state, '', 0} end
local now = now_us()
local session = redis.call('HGET', KEYS[12], t.session)
local deadline = session and cjson.decode(session).withdraw_until_us
if type(deadline) ~= 'number' or deadline <= 0 or now > deadline then
  return {'too_late', '', 0}
end
local K = {candidates = KEYS[2], tickets = KEYS[1], benefit = KEYS[8], stats = KEYS[9],
  outbox = KEYS[10], groups = KEYS[11], sessions = KEYS[12]}
local was = t.state
t.state = 'withdrawn'
t.by = ARGV[6]
t.at = now
redis.call('HSET', KEYS[1], ARGV[3], enc(t))
rec.state = 'withdrawn'
redis.call('HSET', KEYS[2], t.person, enc(rec))
if redis.call('HGET', KEYS[8], t.person) == P then redis.call('HDEL', KEYS[8], t.person) end
redis.call('HINCRBY', KEYS[9], 'withdrawn', 1)
if was == 'assigned' and consent_missing(rec, KEYS[12], t.session) then
  redis.call('HINCRBY', KEYS[9], 'consents_missing', -1)
end
local item = t.session .. ':' .. t.category
local doubles = 0
if ARGV[2] ~= 'x' and redis.call('HGET', KEYS[4], 'state') == 'run' then
  local cursor = tonumber(redis.call('HGET', KEYS[4], 'cursor') or '0')
  local person, next_rec
  person, next_rec, cursor, doubles = next_ranked(K, P, KEYS[5], cursor, 1000000000)
  redis.call('HSET', KEYS[4], 'cursor', cursor)
  if doubles > 0 then redis.call('HINCRBY', KEYS[9], 'double_benefit', doubles) end
  if person then
    local id = give(K, P, ARGV[2], person, next_rec, t.session, t.category, ARGV[7], ARGV[8],
      ARGV[6], now)
    redis.call('HINCRBY', KEYS[9], 'reassigned', 1)
    audit_write('reassigned')
    return {'reassigned', id, doubles}
  end
end
redis.call('HINCRBY', KEYS[6], item, -1)
redis.call('HINCRBY', KEYS[7], item, 1)
redis.call('HINCRBY', KEYS[9], 'returned', 1)
audit_write('returned')
return {'returned', '', doubles}
