-- Erase the printed name (its ciphertext) from a programme's candidate records once the
-- programme's retention date has passed (00:00 Europe/Paris that day, against Redis TIME):
-- one batch of HSCAN per call, resumable from any cursor (a purged record is left as it is).
-- KEYS[1] programmes   KEYS[2] candidates:<P>   KEYS[3] stats:<P>
-- ARGV[1] programme   ARGV[2] the spec's retention_until the caller read (YYYY-MM-DD)
-- ARGV[3] its cutoff in µs (00:00 Paris)   ARGV[4] HSCAN cursor   ARGV[5] batch size
-- Returns {code, next cursor ('0' when done), names erased in this batch}
--   code: 'ok' | 'no_programme' | 'stale' (the retention date changed: read it again)
--         | 'early' (before the cutoff)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local spec = redis.call('HGET', KEYS[1], ARGV[1])
if not spec then return {'no_programme', '0', 0} end
if cjson.decode(spec).retention_until ~= ARGV[2] then return {'stale', '0', 0} end
if now < tonumber(ARGV[3]) then return {'early', ARGV[4], 0} end
local page = redis.call('HSCAN', KEYS[2], ARGV[4], 'COUNT', tonumber(ARGV[5]))
local fields = page[2]
local purged = 0
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  local name = cjson.decode(value).name
  if type(name) == 'string' then
    local needle = '"name":' .. cjson.encode(name)
    local at = string.find(value, needle, 1, true)
    if at then
      value = string.sub(value, 1, at - 1) .. '"name":null' .. string.sub(value, at + #needle)
      redis.call('HSET', KEYS[2], fields[i], value)
      purged = purged + 1
    end
  end
end
if purged > 0 then redis.call('HINCRBY', KEYS[3], 'purged', purged) end
return {'ok', page[1], purged}
