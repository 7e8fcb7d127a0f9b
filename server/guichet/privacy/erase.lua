-- Erase one person's candidacy in one programme (GDPR art. 17) when the rules allow it: no
-- ticket issued to them and no committed lottery counting them. Else refused, nothing written:
-- the probity controls (seed 002 §3) need the record until the retention purge
-- (art. 17(3)(b) and (e), docs/privacy.md). The record holds everything about the candidacy
-- (consents, guardian, group membership, reuse consent, sealed names): it goes whole. Counts
-- stay (stats:P 'erased' counts erasures).
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] programmes  KEYS[2] candidates:P  KEYS[3] stats:P  KEYS[4] benefit  then per lottery
--   (ARGV's order): lottery:P:L   (+ audit chain key last, see audit.lua)
-- ARGV[1] P  ARGV[2] pseudonym  ARGV[3..] lottery ids: the one the caller read in the person's
--   record (none when it read none)   (+ act last)
-- Returns {code, detail}  code: 'erased' | 'no_programme' | 'not_candidate'
--   | 'ticket_issued' (the ticket id) | 'lottery_committed' (the lottery id); the last two
--   with the spec's retention_until as third element | 'retry' (the record names a lottery
--   the caller did not pass: it changed since the caller read it)
local spec = redis.call('HGET', KEYS[1], ARGV[1])
if not spec then return {'no_programme', '', ''} end
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if not raw then return {'not_candidate', '', ''} end
local rec = cjson.decode(raw)
local keep = cjson.decode(spec).retention_until
if type(keep) ~= 'string' then keep = '' end
if type(rec.ticket) == 'string' or rec.state ~= 'candidate'
    or redis.call('HGET', KEYS[4], ARGV[2]) then
  return {'ticket_issued', type(rec.ticket) == 'string' and rec.ticket or '', keep}
end
local given = false
for i = 3, #ARGV do
  if ARGV[i] == rec.lottery then
    given = true
    local state = redis.call('HGET', KEYS[2 + i], 'state')
    if state and state ~= 'open' then return {'lottery_committed', rec.lottery, keep} end
  end
end
if type(rec.lottery) == 'string' and not given then return {'retry', '', ''} end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'candidates', -1)
if rec.eligible == true then redis.call('HINCRBY', KEYS[3], 'eligible', -1) end
redis.call('HINCRBY', KEYS[3], 'erased', 1)
audit_write('erased')
return {'erased', '', ''}
