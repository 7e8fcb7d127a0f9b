-- Fragment: return a hold's seats to stock and its tickets to the account's quota.
-- Include with `--!include give_back.lua`; call give_back(stock, held, usage, record) where
-- record is the decoded hold ({items = {{field, quantity, session}, ...}, tag, tickets,
-- packs}). The hold's own state is the caller's to set.
local function give_back(stock_key, held_key, usage_key, r)
  for _, it in ipairs(r.items) do
    redis.call('HINCRBY', held_key, it[1], -it[2])
    redis.call('HINCRBY', stock_key, it[1], it[2])
    redis.call('HINCRBY', usage_key, r.tag .. ':s:' .. it[3], -it[2])
  end
  redis.call('HINCRBY', usage_key, r.tag .. ':t', -r.tickets)
  redis.call('HINCRBY', usage_key, r.tag .. ':h', -r.tickets)
  if r.packs > 0 then redis.call('HINCRBY', usage_key, r.tag .. ':p', -r.packs) end
end
