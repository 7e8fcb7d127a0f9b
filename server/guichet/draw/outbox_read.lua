-- Read notices as one consumer of the mailer group, at least once: first the notices read
-- but not acknowledged for at least min-idle ms (their reader is taken for dead: XAUTOCLAIM
-- makes them this consumer's), then new ones, up to count in all.
-- KEYS[1] outbox stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] count   ARGV[4] min idle ms
-- Returns {claimed, entries}: entries are {id, {field, value, ...}}, the claimed ones first.
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local count = tonumber(ARGV[3])
local out = {}
local cursor = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], cursor,
    'COUNT', count - #out)
  cursor = r[1]
  for _, e in ipairs(r[2]) do out[#out + 1] = e end
until cursor == '0-0' or #out >= count
local claimed = #out
if #out < count then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count - #out,
    'STREAMS', KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do out[#out + 1] = e end
  end
end
return {claimed, out}
