-- Designation from a lottery's ranking: walk it from the cursor and give one ticket to each
-- giveable candidate while the programme's allocation of the lottery's item lasts; skip (and
-- count) anyone whose benefit names another programme of the games (seed 002 §1).
-- KEYS[1] lottery:P:L  KEYS[2] ranking:P:L  KEYS[3] alloc:P  KEYS[4] assigned
-- KEYS[5] candidates:P  KEYS[6] tickets:P  KEYS[7] benefit  KEYS[8] stats:P  KEYS[9] outbox
-- KEYS[10] groups:P  KEYS[11] sessions
-- ARGV[1] P  ARGV[2] L  ARGV[3] actor  ARGV[4] most ranks looked at  ARGV[5] '1' when the caller stops
-- after this batch if it gives every ticket asked  ARGV[6..] link code, its sha256 hex, … (one
-- pair per ticket this call may give). The act's one record is written by its first batch (the
-- later ones pass an empty act: audit.lua), outcome 'assigned' if that batch ends the act (the
-- allocation or the ranking used up, or (ARGV[5]) every ticket asked given), else 'started'.
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, given, double-benefit skips, allocation left, ranks left}
-- code: 'ok' | 'no_lottery' | 'not_run'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
--!include lua_include/give.lua
local lot = redis.call('HMGET', KEYS[1], 'state', 'session', 'category', 'cursor')
if not lot[1] then return {'no_lottery', 0, 0, 0, 0} end
if lot[1] ~= 'run' then return {'not_run', 0, 0, 0, 0} end
local K = {candidates = KEYS[5], tickets = KEYS[6], benefit = KEYS[7], stats = KEYS[8],
  outbox = KEYS[9], groups = KEYS[10], sessions = KEYS[11]}
local P, session, category = ARGV[1], lot[2], lot[3]
local item = session .. ':' .. category
local cursor = tonumber(lot[4] or '0')
local left = tonumber(redis.call('HGET', KEYS[3], item) or '0')
local budget = tonumber(ARGV[4])
local now = now_us()
local given, doubles, c, total = 0, 0, 6, redis.call('LLEN', KEYS[2])
while left > 0 and budget > 0 and c + 1 <= #ARGV do
  local before = cursor
  local person, rec, d
  person, rec, cursor, d, total = next_ranked(K, P, KEYS[2], cursor, budget)
  budget = budget - (cursor - before)
  doubles = doubles + d
  if person == nil then break end
  give(K, P, ARGV[2], person, rec, session, category, ARGV[c], ARGV[c + 1], ARGV[3], now)
  redis.call('HINCRBY', KEYS[3], item, -1)
  redis.call('HINCRBY', KEYS[4], item, 1)
  c = c + 2
  left = left - 1
  given = given + 1
end
redis.call('HSET', KEYS[1], 'cursor', cursor)
if doubles > 0 then redis.call('HINCRBY', KEYS[8], 'double_benefit', doubles) end
local asked = (#ARGV - 5) / 2
if left <= 0 or total - cursor <= 0 or (ARGV[5] == '1' and given == asked) then
  audit_write('assigned')
else
  audit_write('started')
end
return {'ok', given, doubles, left, total - cursor}
