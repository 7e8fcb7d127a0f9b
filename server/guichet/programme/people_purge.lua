-- Erase the printed name and a guardian's name (their ciphertexts) and a minor's majority day
-- from a programme's candidate records once the programme's retention date has passed (00:00 Europe/Paris that day, against Redis TIME):
-- one batch of HSCAN per call, resumable from any cursor (a purged record is left as it is).
-- KEYS[1] programmes   KEYS[2] candidates:<P>   KEYS[3] stats:<P>
-- ARGV[1] programme   ARGV[2] the spec's retention_until the caller read (YYYY-MM-DD)
-- ARGV[3] its cutoff in µs (00:00 Paris)   ARGV[4] HSCAN cursor   ARGV[5] batch size
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns {code, next cursor ('0' when done), names erased in this batch}
--   code: 'ok' | 'no_programme' | 'stale' (the retention date changed: read it again)
--         | 'early' (before the cutoff)
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local spec = redis.call('HGET', KEYS[1], ARGV[1])
if not spec then return {'no_programme', '0', 0} end
if cjson.decode(spec).retention_until ~= ARGV[2] then return {'stale', '0', 0} end
if now < tonumber(ARGV[3]) then return {'early', ARGV[4], 0} end
local page = redis.call('HSCAN', KEYS[2], ARGV[4], 'COUNT', tonumber(ARGV[5]))
local fields = page[2]
local purged = 0
-- Null the string value of `field` in the JSON text `value` (the record is rewritten as text:
-- cjson would round its µs times).
local function erase(value, field, sealed)
  if type(sealed) ~= 'string' then return value, false end
  local needle = '"' .. field .. '":' .. cjson.encode(sealed)
  local at = string.find(value, needle, 1, true)
  if not at then return value, false end
  return string.sub(value, 1, at - 1) .. '"' .. field .. '":null' .. string.sub(value, at + #needle), true
end
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  local rec = cjson.decode(value)
  local changed, guardian_changed, majority_changed
  value, changed = erase(value, 'name', rec.name)
  if type(rec.guardian) == 'table' then
    value, guardian_changed = erase(value, 'sealed_name', rec.guardian.sealed_name)
  end
  value, majority_changed = erase(value, 'majority_on', rec.majority_on)
  if changed or guardian_changed or majority_changed then
    redis.call('HSET', KEYS[2], fields[i], value)
  end
  if changed then purged = purged + 1 end
end
if purged > 0 then redis.call('HINCRBY', KEYS[3], 'purged', purged) end
-- One record per purge, written by its first batch (later ones pass no act: audit.lua):
-- 'purged' if that batch ends it (cursor '0'), else 'started'.
audit_write(page[1] == '0' and 'purged' or 'started')
return {'ok', page[1], purged}
