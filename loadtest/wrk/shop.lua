-- wrk script for the shop: POSTs with a JSON body, an account token and, for holds, a fresh
-- Idempotency-Key on every request.
--
--   wrk -t1 -c64 -d10s -s loadtest/wrk/shop.lua URL -- MODE FILE [BODY] [OFFSET]
--
-- MODE hold     FILE: one account token a line; BODY: the hold's JSON (a file); every
--               request takes the next token and a new key (run id + counter)
-- MODE confirm  FILE: "<hold id> <token>" a line; the request confirms that hold
--               (URL = the sale's holds base, e.g. http://host/v1/sales/bench/holds)
-- OFFSET        start at this line (0-based): a second run skips what a first one used
-- The lines wrap around when the run needs more requests than the file has.

local lines, count, next_index = {}, 0, 0
local mode, body, base
local run_id = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))

function init(args)
  mode = args[1]
  local file = args[2]
  if mode ~= "hold" and mode ~= "confirm" then error("MODE is hold or confirm") end
  for line in io.lines(file) do
    if line ~= "" then
      count = count + 1
      lines[count] = line
    end
  end
  if count == 0 then error("no lines in " .. file) end
  if mode == "hold" then
    local f = assert(io.open(args[3], "r"))
    body = f:read("*a")
    f:close()
    next_index = tonumber(args[4] or "0")
  else
    body = '{"payment_reference":"bench"}'
    next_index = tonumber(args[3] or "0")
  end
  base = wrk.path
end

function request()
  local line = lines[(next_index % count) + 1]
  next_index = next_index + 1
  if mode == "hold" then
    return wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. line,
      ["Idempotency-Key"] = run_id .. "-" .. next_index,
      ["Content-Type"] = "application/json",
    }, body)
  end
  local id, token = line:match("^(%S+) (%S+)$")
  return wrk.format("POST", base .. "/" .. id .. "/confirm", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end
