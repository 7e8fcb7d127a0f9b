-- Delete one batch of acknowledged notices: of the ids after ARGV[2] up to the group's last
-- delivered one (later ids are not delivered yet), those not pending (the rest await an ack).
--!include guichet.audit:lua_include/audit.lua
-- (+ audit chain key / act last, see audit.lua: the trim's first call writes its one record,
-- 'trimmed' if it finds nothing left after it, else 'started'; later calls pass no act)
-- KEYS[1] outbox stream   ARGV[1] group   ARGV[2] start after this id ('' = from the first)
-- ARGV[3] batch size
-- Returns {deleted, next}: next is the last id looked at ('' when there is nothing left).
if redis.call('EXISTS', KEYS[1]) == 0 then
  audit_write('trimmed')
  return {0, ''}
end
local last
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then
      delivered = g[i + 1]
    end
  end
  if name == ARGV[1] then last = delivered end
end
if not last then
  audit_write('trimmed')
  return {0, ''}
end
local from = ARGV[2] == '' and '-' or '(' .. ARGV[2]
local entries = redis.call('XRANGE', KEYS[1], from, last, 'COUNT', ARGV[3])
if #entries == 0 then
  audit_write('trimmed')
  return {0, ''}
end
local first, final = entries[1][1], entries[#entries][1]
local pending = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], first, final, ARGV[3])) do
  pending[p[1]] = true
end
local acked = {}
for _, e in ipairs(entries) do
  if not pending[e[1]] then acked[#acked + 1] = e[1] end
end
local deleted = 0
if #acked > 0 then deleted = redis.call('XDEL', KEYS[1], unpack(acked)) end
if final == last or #entries < tonumber(ARGV[3]) then  -- up to the last delivered id: done
  audit_write('trimmed')
  return {deleted, ''}
end
audit_write('started')
return {deleted, final}
