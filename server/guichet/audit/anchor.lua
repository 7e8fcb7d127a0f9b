-- Append a signed anchor (audit/anchors.py) unless another signer got there first.
-- KEYS[1] anchors stream   ARGV[1] the previous anchor's SHA-256 (64 zeros for the first)
-- ARGV[2] this anchor's seq   ARGV[3] compact JWS   ARGV[4] its SHA-256   ARGV[5] kid
-- ARGV[6] cursors (JSON: the stream id of each chain's anchored head, to read on from there)
-- Returns {'appended', at_us} or {'stale', current seq}: a concurrent signer appended first
-- (with several workers only one anchor per round wins; the others skip).
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local seq, prev = 0, string.rep('0', 64)
if last then
  local f = last[2]
  for i = 1, #f, 2 do
    if f[i] == 'seq' then seq = tonumber(f[i + 1]) elseif f[i] == 'hash' then prev = f[i + 1] end
  end
end
if prev ~= ARGV[1] or seq + 1 ~= tonumber(ARGV[2]) then return {'stale', seq} end
local t = redis.call('TIME')
local at = t[1] .. string.rep('0', 6 - #t[2]) .. t[2]
redis.call('XADD', KEYS[1], '*', 'seq', ARGV[2], 'at', at, 'jws', ARGV[3], 'hash', ARGV[4],
  'kid', ARGV[5], 'cursors', ARGV[6])
return {'appended', at}
