-- Shared by designate.lua, designate_one.lua and tickets_withdraw.lua (slice "tickets").
-- enc(v): JSON like cjson.encode, but integral numbers written exactly (cjson rounds 16-digit
-- µs times) and empty tables as [] where the field is a list. An integer goes through cjson as
-- the string "\1<digits>\1" (encoded "\u0001…\u0001", then unquoted): no stored text can
-- carry a control character (every free-text field's pattern forbids them, token subjects are
-- printable), so no caller's text can pass for a number.
local function int_marked(v)
  if type(v) == 'table' then
    local out = {}
    for k, x in pairs(v) do out[k] = int_marked(x) end
    return out
  elseif type(v) == 'number' and v == math.floor(v) then
    return '\1' .. string.format('%d', v) .. '\1'
  end
  return v
end
local function enc(v)
  local s = cjson.encode(int_marked(v))
  s = string.gsub(s, '"\\u0001(%-?%d+)\\u0001"', '%1')
  s = string.gsub(s, '"criteria":{}', '"criteria":[]')
  return s
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Is rec a minor on the session's day with no guardian's consent recorded? (Such a holder is
-- counted in stats:P consents_missing while it holds an assigned ticket.)
local function consent_missing(rec, sessions, session)
  if not (rec.guardian == nil or rec.guardian == cjson.null) then return false end
  if type(rec.majority_on) ~= 'string' then return false end
  local s = redis.call('HGET', sessions, session)
  local day = s and cjson.decode(s).date or ''
  return rec.majority_on > day
end
-- Give person (candidate record rec) a ticket of session x category: the ticket record, the
-- candidate's state, the benefit mark, the counters of the act, a notice. The caller moves the
-- seat's counts (alloc -> assigned, or kept assigned on a reassignment).
-- K: {candidates, tickets, benefit, stats, outbox, groups, sessions}. Returns the ticket id.
local function give(K, P, L, person, rec, session, category, code, code_hash, actor, now)
  local n = redis.call('HINCRBY', K.stats, 'tickets', 1)
  local id = P .. '.' .. L .. '.' .. n
  redis.call('HSET', K.tickets, id, enc({person = person, session = session,
    category = category, state = 'assigned', code_hash = code_hash, charter = cjson.null,
    by = actor, at = now}))
  rec.state = 'assigned'
  rec.ticket = id
  redis.call('HSET', K.candidates, person, enc(rec))
  redis.call('HSET', K.benefit, person, P)
  redis.call('HINCRBY', K.stats, 'assigned', 1)
  if consent_missing(rec, K.sessions, session) then
    redis.call('HINCRBY', K.stats, 'consents_missing', 1)
  end
  local notice = {'kind', 'ticket', 'programme', P, 'ticket', id,
    'link', '/v1/programmes/' .. P .. '/tickets/' .. id .. '#' .. code}
  if type(rec.group) == 'string' then
    local g = redis.call('HGET', K.groups, rec.group)
    if g then
      table.insert(notice, 'leader')
      table.insert(notice, cjson.decode(g).leader)
    end
  end
  redis.call('XADD', K.outbox, '*', unpack(notice))
  return id
end
-- Can person (record raw) be given a ticket of programme P? 'ok', 'skip' or 'double' (+ the
-- programme holding its benefit).
local function giveable(K, P, person, raw)
  if not raw then return 'skip' end
  local rec = cjson.decode(raw)
  if rec.eligible ~= true or rec.state ~= 'candidate' then return 'skip' end
  local b = redis.call('HGET', K.benefit, person)
  if b and b ~= P then return 'double', b end
  return 'ok', rec
end
-- The next giveable person of a lottery's ranking from its cursor (at most max looked at).
-- Returns person, rec (nil when none), the new cursor, and how many were skipped for a
-- double benefit.
local function next_ranked(K, P, ranking, cursor, max)
  local total = redis.call('LLEN', ranking)
  local doubles = 0
  local looked = 0
  while cursor < total and looked < max do
    local person = redis.call('LINDEX', ranking, cursor)
    cursor = cursor + 1
    looked = looked + 1
    local verdict, rec = giveable(K, P, person, redis.call('HGET', K.candidates, person))
    if verdict == 'ok' then return person, rec, cursor, doubles, total end
    if verdict == 'double' then doubles = doubles + 1 end
  end
  return nil, nil, cursor, doubles, total
end
