-- Change one candidate's record (guardian consent added, reuse consent given or revoked) if
-- it is still the one the caller read (compare and set: the caller decides on the record it
-- read, and its times come from Redis TIME), and, when a group leader acts, only a candidate
-- of the group it leads. A guardian's consent recorded for a minor who already holds a ticket
-- (counted in stats:<P> consents_missing when it was given, lua_include/give.lua) takes it
-- off that count. The read is this script too: called with no record (ARGV[2] ''), or when
-- the record changed, it answers 'stale' with the current record and Redis TIME.
-- KEYS[1] candidates:<P>   KEYS[2] leaders:<P>   KEYS[3] stats:<P>   KEYS[4] tickets:<P>
-- KEYS[5] sessions
-- ARGV[1] pseudonym   ARGV[2] the record as read ('' to read it)   ARGV[3] the new record
-- ARGV[4] the leader's account ('' when an operator acts)   ARGV[5] the record's group
-- (leaders only)
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, the current record ('stale'; else ''), Redis TIME in µs}
--   code: 'ok' | 'missing' | 'stale' (decide again on this record) | 'not_your_group'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return {'missing', '', now} end
if ARGV[2] == '' then return {'stale', current, now} end
if ARGV[4] ~= '' and (ARGV[5] == '' or redis.call('HGET', KEYS[2], ARGV[4]) ~= ARGV[5]) then
  return {'not_your_group', '', now}
end
if current ~= ARGV[2] then return {'stale', current, now} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local old, new = cjson.decode(ARGV[2]), cjson.decode(ARGV[3])
local function none(v) return v == nil or v == cjson.null end
if none(old.guardian) and not none(new.guardian) and old.state == 'assigned'
    and type(old.ticket) == 'string' and type(old.majority_on) == 'string' then
  local t = redis.call('HGET', KEYS[4], old.ticket)
  local ticket = t and cjson.decode(t)
  if ticket and ticket.state == 'assigned' then
    local s = redis.call('HGET', KEYS[5], ticket.session)
    local day = s and cjson.decode(s).date or ''
    if old.majority_on > day then redis.call('HINCRBY', KEYS[3], 'consents_missing', -1) end
  end
end
audit_write('updated')
return {'ok', '', now}
