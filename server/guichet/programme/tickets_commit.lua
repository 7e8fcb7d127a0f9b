-- The beneficiary (link code) or their group's leader accepts the charter and commits to
-- attend: the ticket moves to 'committed' (charter version recorded). A minor (majority_on
-- after the session's day) without a guardian's consent is refused: no ticket is issued.
-- KEYS[1] tickets:P  KEYS[2] candidates:P  KEYS[3] leaders:P  KEYS[4] sessions
-- ARGV[1] ticket id  ARGV[2] sha256 hex of the link code, or ''  ARGV[3] leader account, or ''
-- ARGV[4] charter version  ARGV[5] actor
-- Returns {code, ticket record, the beneficiary's sealed name ('' none)}  code: 'ok' |
-- 'unknown' | 'withdrawn' | 'used' | 'guardian_consent_required' | 'no_name' (purged)
--!include lua_include/give.lua
--!include lua_include/holder.lua
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'unknown', ''} end
local t = cjson.decode(raw)
local rec = holder(t, KEYS[2], KEYS[3], ARGV[2], ARGV[3])
if not rec then return {'unknown', ''} end
if t.state == 'withdrawn' or t.state == 'used' then return {t.state, raw} end
local sealed = type(rec.name) == 'string' and rec.name or ''
if t.state == 'committed' then return {'ok', raw, sealed} end
if sealed == '' then return {'no_name', '', ''} end  -- purged: no nominative ticket any more
local s = redis.call('HGET', KEYS[4], t.session)
local day = s and cjson.decode(s).date or ''
if (rec.guardian == nil or rec.guardian == cjson.null) and type(rec.majority_on) == 'string'
    and rec.majority_on > day then
  return {'guardian_consent_required', ''}
end
t.state = 'committed'
t.charter = ARGV[4]
t.by = ARGV[5]
t.at = now_us()
raw = enc(t)
redis.call('HSET', KEYS[1], ARGV[1], raw)
return {'ok', raw, sealed}
