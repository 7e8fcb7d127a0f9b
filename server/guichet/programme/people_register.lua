-- Register one eligible candidate in a programme: at most once per pseudonym and programme
-- (decided here, atomically with the write), for an open lottery of the programme, in an
-- existing group, by that group's leader when a leader registers. The whole registration in
-- one round trip: the caller's view of the programme's spec is checked here ('stale' answers
-- the current spec), and "today" is Redis TIME here.
-- KEYS[1] programmes   KEYS[2] candidates:<P>   KEYS[3] stats:<P>   KEYS[4] lottery:<P>:<L>
-- KEYS[5] sessions     KEYS[6] groups:<P>       KEYS[7] leaders:<P>   KEYS[8] calendar
-- ARGV[1] programme   ARGV[2] pseudonym   ARGV[3] the record's JSON up to '"at":' (the script
-- appends Redis TIME in µs and '}')   ARGV[4] group ('' none)   ARGV[5] the leader's account
-- ('' when an operator registers)   ARGV[6] retention cutoff µs ('' none)   ARGV[7] majority day
-- ARGV[8] the spec JSON the caller decided on ('' none)   ARGV[9] the first of the spec's
-- criteria not attested ('' none)   ARGV[10] '1' when a leader names another group than its own
-- ARGV[11] the number n of field checks, then n pairs (field index, UTC day number since the
-- epoch that must not be after today's, or '' for a field already known invalid)
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, minor ('1' | '0'), the lottery's session day ('' unknown) | the current spec
-- ('stale') | the field index ('invalid')}
--   code: 'created' | 'no_programme' | 'stale' | 'invalid' | 'criteria' | 'not_your_group'
--         | 'retention_over' | 'no_group' | 'no_lottery' | 'lottery_closed'
--         | 'already_registered'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local spec = redis.call('HGET', KEYS[1], ARGV[1])
if not spec then return {'no_programme', '0', ''} end
if spec ~= ARGV[8] then return {'stale', '0', spec} end
local today = math.floor(tonumber(t[1]) / 86400)
for i = 0, tonumber(ARGV[11]) - 1 do
  local day = ARGV[13 + 2 * i]
  if day == '' or tonumber(day) > today then return {'invalid', '0', ARGV[12 + 2 * i]} end
end
if ARGV[9] ~= '' then return {'criteria', '0', ARGV[9]} end
if ARGV[10] == '1' then return {'no_group', '0', ''} end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[7], ARGV[5]) ~= ARGV[4] then
  return {'not_your_group', '0', ''}
end
if ARGV[6] ~= '' and now >= tonumber(ARGV[6]) then return {'retention_over', '0', ''} end
if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[6], ARGV[4]) == 0 then
  return {'no_group', '0', ''}
end
local l = redis.call('HMGET', KEYS[4], 'session', 'state', 'closes_at')
if not l[1] then return {'no_lottery', '0', ''} end
local day = ''
local s = redis.call('HGET', KEYS[5], l[1])
if s then day = cjson.decode(s).date or '' end
local minor = (day ~= '' and day < ARGV[7]) and '1' or '0'
if (l[2] and l[2] ~= 'open' and l[2] ~= 'committed') or (l[3] and now >= tonumber(l[3])) then
  return {'lottery_closed', minor, day}
end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {'already_registered', minor, day} end
-- Minimised: a person of age on the games' first day is of age at every session; their
-- majority day (their birth date, shifted) is then not kept.
local record = ARGV[3]
local first = redis.call('HGET', KEYS[8], 'first')
if first and ARGV[7] <= first then
  local kept = '"majority_on":"' .. ARGV[7] .. '"'
  local at = string.find(record, kept, 1, true)
  if at then
    record = string.sub(record, 1, at - 1) .. '"majority_on":null' .. string.sub(record, at + #kept)
  end
end
redis.call('HSET', KEYS[2], ARGV[2], record .. string.format('%d', now) .. '}')
redis.call('HINCRBY', KEYS[3], 'candidates', 1)
redis.call('HINCRBY', KEYS[3], 'eligible', 1)
audit_write('created')
return {'created', minor, day}
