-- Everything the State programme of one games stores about one person (GDPR art. 15), read in
-- one step, and the access recorded in the audit chain of the games by the same script.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] programmes  KEYS[2] benefit  KEYS[3] outbox  KEYS[4] declarations  then per programme
--   (in ARGV's order): candidates:P  tickets:P  groups:P  exceptions:P  then per lottery given
--   for P: lottery:P:L  ranking:P:L   (+ audit chain key last, see audit.lua)
-- ARGV[1] pseudonym  ARGV[2] number of programmes, then per programme: P, its number n of
--   lotteries (0 or 1: the one the caller read in the person's record), their n ids
--   (+ act last, see audit.lua)
-- Returns {'none'} (nothing stored about them: no record), {'retry'} (a record names a lottery
--   the caller did not pass: it changed since the caller read it; no record), or {'ok', benefit
--   ('' none), {at, until of each declaration naming them...}, candidacy...}, a candidacy =
--   {P, record JSON, lottery state ('' none), rank (0-based, -1 none), ticket JSON ('' none),
--   group JSON ('' none), {exception fields...}..., '--', {notice fields...}...}
local person = ARGV[1]
local out = {}
local k, a = 5, 3
local tickets = {}
for _ = 1, tonumber(ARGV[2]) do
  local P, n = ARGV[a], tonumber(ARGV[a + 1])
  local cands, tks, groups, excs = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local lotteries = {}
  for j = 1, n do
    lotteries[ARGV[a + 1 + j]] = {KEYS[k + 2 + 2 * j], KEYS[k + 3 + 2 * j]}
  end
  k, a = k + 4 + 2 * n, a + 2 + n
  local raw = redis.call('HGET', cands, person)
  if raw then
    local rec = cjson.decode(raw)
    local state, rank = '', -1
    local lot = lotteries[rec.lottery]
    if type(rec.lottery) == 'string' and not lot then return {'retry'} end
    if lot then
      state = redis.call('HGET', lot[1], 'state') or ''
      rank = redis.call('LPOS', lot[2], person) or -1
    end
    local ticket = ''
    if type(rec.ticket) == 'string' then
      ticket = redis.call('HGET', tks, rec.ticket) or ''
      tickets[rec.ticket] = true
    end
    local group = ''
    if type(rec.group) == 'string' then group = redis.call('HGET', groups, rec.group) or '' end
    local c = {P, raw, state, rank, ticket, group}
    for _, e in ipairs(redis.call('XRANGE', excs, '-', '+')) do
      for i = 1, #e[2], 2 do
        if e[2][i] == 'person' and e[2][i + 1] == person then c[#c + 1] = e[2] end
      end
    end
    out[#out + 1] = c
  end
end
-- Declarations (AFA) naming them among an agent's conflicts; the declarant is not given.
local named = {}
local decls = redis.call('HGETALL', KEYS[4])
for i = 2, #decls, 2 do
  local d = cjson.decode(decls[i])
  for _, c in ipairs(d.conflicts) do
    if c.pseudonym == person then
      named[#named + 1] = string.format('%d', d.at)
      named[#named + 1] = string.format('%d', d['until'])
      break
    end
  end
end
if #out == 0 and #named == 0 then return {'none'} end
local notices = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
  for i = 1, #e[2], 2 do
    if e[2][i] == 'ticket' and tickets[e[2][i + 1]] then notices[#notices + 1] = e[2] end
  end
end
local reply = {'ok', redis.call('HGET', KEYS[2], person) or '', named}
for _, c in ipairs(out) do
  c[#c + 1] = '--'
  for _, notice in ipairs(notices) do c[#c + 1] = notice end
  reply[#reply + 1] = c
end
audit_write('read')
return reply
