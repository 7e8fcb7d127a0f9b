-- The retention purge of one programme (docs/privacy.md), one batch per call, once the
-- programme's retention date is over (00:00 Europe/Paris the next day, against Redis TIME).
-- Phases, each resumable from its cursor and harmless to run again:
--   candidates: the candidate records (names sealed, consents, guardian, group membership,
--     reuse consent) and the person's benefit mark, deleted
--   tickets: each ticket record keeps its session, category, state and times; its person,
--     its link code's hash and a leader's account (``by``) are blanked
--   groups: each group keeps its mobility count; its leader's account is blanked
--   rest: the leaders index and the rankings deleted, the exceptions register rewritten
--     without the person and the free-text justification (the entries and their ids, hence
--     the counts, kept), the programme's ticket notices (links, leaders) deleted from the outbox;
--     the games' conflict-of-interest declarations: an expired one deleted whole (it bars
--     nothing any more; its filing stays in the audit chain), a current one kept without the
--     pseudonyms that are no candidate of any programme of the games any more
-- The counters (stats:P) and the audit log are kept. A purge run's first call writes its audit
-- record ('purged' if it also ends the run, else 'started'); later calls pass an empty act.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] programmes  KEYS[2] candidates:P  KEYS[3] tickets:P  KEYS[4] groups:P
-- KEYS[5] leaders:P  KEYS[6] exceptions:P  KEYS[7] benefit  KEYS[8] outbox
-- KEYS[9] declarations  KEYS[10..9+n] candidates:Q of the games' other programmes
-- KEYS[10+n..] ranking:P:L of each lottery of P   (+ audit chain key last, see audit.lua)
-- ARGV[1] P  ARGV[2] the spec's retention_until the caller read  ARGV[3] its cutoff µs
-- ARGV[4] phase  ARGV[5] cursor  ARGV[6] batch size  ARGV[7] n   (+ act last, see audit.lua)
-- Returns {code, next phase ('done' at the end), next cursor, items purged}
--   code: 'purged' | 'no_programme' | 'stale' (the retention date changed) | 'early'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local P = ARGV[1]
local spec = redis.call('HGET', KEYS[1], P)
if not spec then return {'no_programme', '', '0', 0} end
if cjson.decode(spec).retention_until ~= ARGV[2] then return {'stale', '', '0', 0} end
if now < tonumber(ARGV[3]) then return {'early', '', '0', 0} end
local phase, cursor, batch = ARGV[4], ARGV[5], tonumber(ARGV[6])
-- Blank the string value of `field` in the JSON text `value` (rewritten as text: cjson would
-- round its µs times).
local function blank(value, field, old)
  if type(old) ~= 'string' or old == '' then return value, false end
  local needle = '"' .. field .. '":' .. cjson.encode(old)
  local at = string.find(value, needle, 1, true)
  if not at then return value, false end
  return string.sub(value, 1, at - 1) .. '"' .. field .. '":""' .. string.sub(value, at + #needle), true
end
local done, nextp, nextc = 0, phase, '0'
local function scan(key, after)
  local page = redis.call('HSCAN', key, cursor, 'COUNT', batch)
  nextc = page[1]
  if nextc == '0' then nextp = after end
  return page[2]
end
if phase == 'candidates' then
  local fields = scan(KEYS[2], 'tickets')
  for i = 1, #fields, 2 do
    redis.call('HDEL', KEYS[2], fields[i])
    if redis.call('HGET', KEYS[7], fields[i]) == P then redis.call('HDEL', KEYS[7], fields[i]) end
    done = done + 1
  end
elseif phase == 'tickets' then
  local fields = scan(KEYS[3], 'groups')
  for i = 1, #fields, 2 do
    local value, rec = fields[i + 1], cjson.decode(fields[i + 1])
    local a, b, c
    value, a = blank(value, 'person', rec.person)
    value, b = blank(value, 'code_hash', rec.code_hash)
    c = false
    if type(rec.by) == 'string' and string.sub(rec.by, 1, 8) == 'account:' then
      value, c = blank(value, 'by', rec.by)
    end
    if a or b or c then
      redis.call('HSET', KEYS[3], fields[i], value)
      done = done + 1
    end
  end
elseif phase == 'groups' then
  local fields = scan(KEYS[4], 'rest')
  for i = 1, #fields, 2 do
    local value, rec = fields[i + 1], cjson.decode(fields[i + 1])
    local a, c
    value, a = blank(value, 'leader', rec.leader)
    c = false
    if type(rec.by) == 'string' and string.sub(rec.by, 1, 8) == 'account:' then
      value, c = blank(value, 'by', rec.by)
    end
    if a or c then
      redis.call('HSET', KEYS[4], fields[i], value)
      done = done + 1
    end
  end
elseif phase == 'rest' then
  local others = tonumber(ARGV[7])
  done = done + redis.call('DEL', KEYS[5])
  for i = 10 + others, #KEYS do done = done + redis.call('DEL', KEYS[i]) end
  local function candidate(person)
    if redis.call('HEXISTS', KEYS[2], person) == 1 then return true end
    for i = 10, 9 + others do
      if redis.call('HEXISTS', KEYS[i], person) == 1 then return true end
    end
    return false
  end
  local decls = redis.call('HGETALL', KEYS[9])
  for i = 1, #decls, 2 do
    local value = decls[i + 1]
    local d = cjson.decode(value)
    if now >= d['until'] then
      redis.call('HDEL', KEYS[9], decls[i])
      done = done + 1
    else
      local kept, dropped = {}, false
      for _, c in ipairs(d.conflicts) do
        if type(c.pseudonym) == 'string' then
          if candidate(c.pseudonym) then
            kept[#kept + 1] = '{"pseudonym":' .. cjson.encode(c.pseudonym) .. '}'
          else
            dropped = true
          end
        elseif type(c.programme) == 'string' then
          kept[#kept + 1] = '{"programme":' .. cjson.encode(c.programme) .. '}'
        end
      end
      if dropped then
        -- rewritten as text: cjson would round the µs times
        local at = string.find(value, ',"conflicts":', 1, true)
        redis.call('HSET', KEYS[9], decls[i], string.sub(value, 1, at) .. '"conflicts":['
          .. table.concat(kept, ',') .. ']}')
        done = done + 1
      end
    end
  end
  local kept = {session = true, category = true, by = true, at = true, ticket = true}
  local entries = redis.call('XRANGE', KEYS[6], '-', '+')
  if #entries > 0 then
    redis.call('DEL', KEYS[6])
    for _, e in ipairs(entries) do
      local out = {}
      for i = 1, #e[2], 2 do
        if kept[e[2][i]] then
          out[#out + 1] = e[2][i]
          out[#out + 1] = e[2][i + 1]
        end
      end
      out[#out + 1] = 'purged'
      out[#out + 1] = '1'
      redis.call('XADD', KEYS[6], e[1], unpack(out))
      done = done + 1
    end
  end
  for _, e in ipairs(redis.call('XRANGE', KEYS[8], '-', '+')) do
    for i = 1, #e[2], 2 do
      if e[2][i] == 'programme' and e[2][i + 1] == P then
        redis.call('XDEL', KEYS[8], e[1])
        done = done + 1
      end
    end
  end
  nextp = 'done'
end
audit_write(nextp == 'done' and 'purged' or 'started')
return {'purged', nextp, nextc, done}
