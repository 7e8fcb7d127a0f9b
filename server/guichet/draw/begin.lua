-- Start (or resume) a draw's run: after the close, with a commitment made before it. The
-- first call freezes the beacon, the entry count and the entry-set digest; a later call (a
-- run resumed after a kill) must bring the same ones.
-- The run's audit record is written here, by its first script that changes state (outcome
-- 'started', or 'resumed' for a run resumed after a kill: an act of its own), so that no
-- partial run exists without its record; finish.lua writes none.
--!include guichet.audit:lua_include/audit.lua
-- KEYS[1] cfg   ARGV[1] beacon hex   ARGV[2] entries   ARGV[3] entry-set digest
-- ARGV[4] ids per stored ranking chunk  (+ audit chain key / act last, see audit.lua)
-- Returns {code, started_us, detail}
--   code: 'started' | 'resumed' | 'ran' | 'unknown' | 'uncommitted' | 'open'
--         | 'beacon_differs' (detail: the frozen beacon) | 'set_differs' (detail: frozen count)
--         | 'chunk_differs' (detail: the frozen chunk size)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = redis.call('HMGET', KEYS[1], 'closes_us', 'commitment', 'committed_us',
  'run_started_us', 'run_beacon', 'frozen_entries', 'frozen_digest', 'ran_us', 'ranking_chunk')
if not c[1] then return {'unknown', 0, ''} end
if not c[2] or tonumber(c[3]) >= tonumber(c[1]) then return {'uncommitted', 0, ''} end
if now < tonumber(c[1]) then return {'open', 0, c[1]} end
if c[8] then return {'ran', c[4], ''} end
if c[4] then
  if c[5] ~= ARGV[1] then return {'beacon_differs', c[4], c[5]} end
  if c[6] ~= ARGV[2] or c[7] ~= ARGV[3] then return {'set_differs', c[4], c[6]} end
  if c[9] ~= ARGV[4] then return {'chunk_differs', c[4], c[9]} end
  audit_write('resumed')
  return {'resumed', c[4], ''}
end
local at = string.format('%d', now)
redis.call('HSET', KEYS[1], 'run_started_us', at, 'run_beacon', ARGV[1],
  'frozen_entries', ARGV[2], 'frozen_digest', ARGV[3], 'ranking_chunk', ARGV[4])
audit_write('started')
return {'started', at, ''}
