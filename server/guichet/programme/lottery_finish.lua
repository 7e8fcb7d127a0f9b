-- Store a lottery's ranking and signed transcript, once: the lottery moves to 'run'.
-- KEYS[1] lottery:P:L  KEYS[2] ranking:P:L
-- ARGV[1] transcript JSON  ARGV[2] ran_at µs  ARGV[3..] pseudonyms in rank order
-- (+ declarations, audit chain key last; declaration ask, act last: see
-- lua_include/declared.lua and guichet.audit's audit.lua; a refusal of declared.lua answers
-- {'declaration_required' | 'declared_conflict', why})
-- Returns code: 'ok' | 'run' (already ran: nothing changed) | 'not_committed'
--!include guichet.audit:lua_include/audit.lua
--!include lua_include/declared.lua
local refused = declared_refusal()
if refused then return refused end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'run' then return 'run' end
if state ~= 'committed' then return 'not_committed' end
redis.call('DEL', KEYS[2])
local i = 3
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('HSET', KEYS[1], 'state', 'run', 'transcript', ARGV[1], 'ran_at', ARGV[2],
  'ranked', #ARGV - 2, 'cursor', 0)
audit_write('run')
return 'ok'
