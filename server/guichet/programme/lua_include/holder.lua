-- Who may act on a ticket (tickets_commit.lua, tickets_withdraw.lua): its beneficiary, proven by the
-- link code's hash (code_hash ~= ''), or the leader of the beneficiary's group (leader ~= '');
-- both '' means an operator the caller has authenticated. Returns the beneficiary's candidate
-- record, or nil when the caller is not one of them.
local function holder(t, candidates, leaders, code_hash, leader)
  local raw = redis.call('HGET', candidates, t.person)
  if not raw then return nil end
  local rec = cjson.decode(raw)
  if code_hash ~= '' then
    if code_hash ~= t.code_hash then return nil end
  elseif leader ~= '' then
    local g = redis.call('HGET', leaders, leader)
    if not g or type(rec.group) ~= 'string' or g ~= rec.group then return nil end
  end
  return rec
end
