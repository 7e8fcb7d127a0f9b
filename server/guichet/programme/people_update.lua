-- Change one candidate's record (guardian consent added, reuse consent given or revoked) if
-- it is still the one the caller read (compare and set: the caller decides on the record it
-- read, and its times come from Redis TIME), and, when a group leader acts, only a candidate
-- of the group it leads.
-- KEYS[1] candidates:<P>   KEYS[2] leaders:<P>
-- ARGV[1] pseudonym   ARGV[2] the record as read   ARGV[3] the new record   ARGV[4] the
-- leader's account ('' when an operator acts)   ARGV[5] the record's group (leaders only)
-- Returns 'ok' | 'missing' | 'stale' (read it again) | 'not_your_group'
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 'missing' end
if ARGV[4] ~= '' and (ARGV[5] == '' or redis.call('HGET', KEYS[2], ARGV[4]) ~= ARGV[5]) then
  return 'not_your_group'
end
if current ~= ARGV[2] then return 'stale' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 'ok'
