-- The conflict-of-interest declaration check (AFA, seed 002 §3.1; docs/architecture.md,
-- "Conflict-of-interest declarations"), done by the script that performs a programme act, so
-- that no act by an undeclared or conflicted agent is ever committed. A fragment, included
-- right after guichet.audit:lua_include/audit.lua (which pops the chain key and the act): this
-- one pops the next-to-last KEY (the games' declarations hash) and ARGV (the ask: '' when the
-- act is not an operator's or central agent's — CLI, group leader — else JSON {actor,
-- programme, pseudonyms}), so the script's own KEYS and ARGV read as they would without it.
-- The script calls ``declared_refusal(more)`` (``more``: pseudonyms the act targets that only
-- the script knows, or nil) before any write, and returns its answer when not nil:
-- {'declaration_required', 'none' | 'expired'} | {'declared_conflict', 'programme' |
-- 'pseudonym'}.
local DECLARED_KEY = table.remove(KEYS)
local DECLARED_ASK = table.remove(ARGV)

local function declared_refusal(more)
  if DECLARED_ASK == '' then return nil end
  local ask = cjson.decode(DECLARED_ASK)
  local raw = redis.call('HGET', DECLARED_KEY, ask.actor)
  if not raw then return {'declaration_required', 'none'} end
  local d = cjson.decode(raw)
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) >= d['until'] then
    return {'declaration_required', 'expired'}
  end
  local targets = {}
  for _, p in ipairs(ask.pseudonyms) do targets[p] = true end
  for _, p in ipairs(more or {}) do targets[p] = true end
  for _, c in ipairs(d.conflicts) do
    if type(c.programme) == 'string' and c.programme == ask.programme then
      return {'declared_conflict', 'programme'}
    end
    if type(c.pseudonym) == 'string' and targets[c.pseudonym] then
      return {'declared_conflict', 'pseudonym'}
    end
  end
  return nil
end
