-- The audit record of an act, written by the script that performs the act, so that no act
-- exists without its record (docs/architecture.md, "Audit log"). A fragment, included at the
-- top of a script (before anything reads KEYS or ARGV):
--   --!include guichet.audit:lua_include/audit.lua
-- The caller (audit/act.py, ``Act.keys``/``Act.args``) passes the chain key as the LAST key
-- and the act as the LAST argument: a list of netstrings ``<len>:<bytes>,`` holding actor,
-- action, object, digest. This fragment pops both, so the script's own KEYS and ARGV read as
-- they would without it. The script calls ``audit_write(outcome)`` once, at the point where
-- the act succeeded; a refused act writes nothing.
--
-- An act done in batches (one script call each) is recorded by its FIRST successful batch, in
-- the same atomic step as the batch's changes: no act exists without its record at any instant
-- (a run stopped half-way has its record; resuming it is a new act, with its own). Its outcome
-- is the act's success code when that batch ends the act, else 'started'. The later batches
-- pass an empty act (a zero-length last argument): ``audit_write`` then writes nothing.
--
-- A chain is a stream (one per hash tag: the act's keys and its chain share a slot); each
-- entry's fields, in this order: v, seq, at, actor, action, object, digest, outcome, prev, hash.
-- ``at`` is Redis TIME in µs; ``seq`` counts from 1; ``prev`` is the previous record's hash
-- (40 zeros for the first); ``hash`` = SHA-1 (the only hash Redis Lua offers) of the
-- netstrings of v, chain, seq, at, actor, action, object, digest, outcome, prev — audit/record.py
-- computes the same in Python, and the signed anchors add SHA-256 over every record.
local AUDIT_KEY = table.remove(KEYS)
local AUDIT_ACT = table.remove(ARGV)
local AUDIT_DONE = false

local function audit_ns(s)
  return #s .. ':' .. s .. ','
end

local function audit_fields(act)
  local out, i = {}, 1
  while i <= #act do
    local colon = string.find(act, ':', i, true)
    if not colon then return redis.error_reply('audit: malformed act') end
    local n = tonumber(string.sub(act, i, colon - 1))
    out[#out + 1] = string.sub(act, colon + 1, colon + n)
    i = colon + n + 2
  end
  return out
end

-- Append this act's record; ``outcome`` is the script's success code (e.g. 'created').
-- Returns the record's sequence number (0: a later batch's, no record).
local function audit_write(outcome)
  if AUDIT_DONE then return redis.error_reply('audit: one record per act') end
  AUDIT_DONE = true
  if AUDIT_ACT == '' then return 0 end  -- a later batch: its act's first batch wrote the record
  local f = audit_fields(AUDIT_ACT)
  local t = redis.call('TIME')
  local at = t[1] .. string.rep('0', 6 - #t[2]) .. t[2]
  local chain = string.match(AUDIT_KEY, '{(.-)}')
  local seq, prev = 1, string.rep('0', 40)
  local last = redis.call('XREVRANGE', AUDIT_KEY, '+', '-', 'COUNT', 1)[1]
  if last then
    seq = tonumber(last[2][4]) + 1
    prev = last[2][20]
  end
  local v = '1'
  local canonical = audit_ns(v) .. audit_ns(chain) .. audit_ns(tostring(seq)) .. audit_ns(at)
    .. audit_ns(f[1]) .. audit_ns(f[2]) .. audit_ns(f[3]) .. audit_ns(f[4])
    .. audit_ns(outcome) .. audit_ns(prev)
  local hash = redis.sha1hex(canonical)
  redis.call('XADD', AUDIT_KEY, '*', 'v', v, 'seq', seq, 'at', at, 'actor', f[1],
    'action', f[2], 'object', f[3], 'digest', f[4], 'outcome', outcome, 'prev', prev,
    'hash', hash)
  return seq
end
