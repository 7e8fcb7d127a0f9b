-- Designation without a lottery: one ticket to one eligible candidate, recorded in the
-- programme's exceptions register with its written justification (who, why, when).
-- KEYS[1] alloc:P  KEYS[2] assigned  KEYS[3] candidates:P  KEYS[4] tickets:P  KEYS[5] benefit
-- KEYS[6] stats:P  KEYS[7] outbox  KEYS[8] groups:P  KEYS[9] sessions  KEYS[10] exceptions:P
-- ARGV[1] P  ARGV[2] person  ARGV[3] session  ARGV[4] category  ARGV[5] justification
-- ARGV[6] actor  ARGV[7] link code  ARGV[8] its sha256 hex
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, detail}  code: 'ok' (the ticket id) | 'no_session' | 'not_candidate' |
-- 'already_designated' (the candidate's state) | 'double_benefit' (the other programme) |
-- 'no_allocation'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
--!include lua_include/give.lua
local K = {candidates = KEYS[3], tickets = KEYS[4], benefit = KEYS[5], stats = KEYS[6],
  outbox = KEYS[7], groups = KEYS[8], sessions = KEYS[9]}
local P, person, session, category = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', KEYS[9], session) == 0 then return {'no_session', ''} end
local raw = redis.call('HGET', KEYS[3], person)
if not raw then return {'not_candidate', ''} end
local rec = cjson.decode(raw)
if rec.eligible ~= true then return {'not_candidate', ''} end
if rec.state ~= 'candidate' then return {'already_designated', rec.state} end
local b = redis.call('HGET', KEYS[5], person)
if b and b ~= P then
  redis.call('HINCRBY', KEYS[6], 'double_benefit', 1)
  return {'double_benefit', b}
end
local item = session .. ':' .. category
if tonumber(redis.call('HGET', KEYS[1], item) or '0') <= 0 then return {'no_allocation', ''} end
local now = now_us()
local id = give(K, P, 'x', person, rec, session, category, ARGV[7], ARGV[8], ARGV[6], now)
redis.call('HINCRBY', KEYS[1], item, -1)
redis.call('HINCRBY', KEYS[2], item, 1)
redis.call('XADD', KEYS[10], '*', 'person', person, 'session', session, 'category', category,
  'justification', ARGV[5], 'by', ARGV[6], 'at', string.format('%d', now), 'ticket', id)
audit_write('designated')
return {'ok', id}
