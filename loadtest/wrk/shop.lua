-- wrk script for the shop: POSTs with a JSON body, an account token and, for holds, a fresh
-- Idempotency-Key on every request.
--
--   wrk -t1 -c64 -d10s -s loadtest/wrk/shop.lua URL -- MODE FILE [BODY] [OFFSET]
--
-- MODE hold     FILE: one account token a line; BODY: a file of hold bodies, one JSON a
--               line; every request takes the next token, the next body and a new key
--               (run id + counter)
-- MODE confirm  FILE: "<hold id> <token>" a line; the request confirms that hold
--               (URL = the sale's holds base, e.g. http://host/v1/sales/bench/holds)
-- OFFSET        start at this line (0-based): a second run skips what a first one used
-- The lines wrap around when the run needs more requests than the file has.

-- Several wrk threads (-tN) interleave: thread i takes lines OFFSET+i, OFFSET+i+N, ... where N
-- is the environment's WRK_THREADS (the runner sets it; default 1), so no line is used twice.
local created = 0
function setup(thread)
  thread:set("thread_index", created)
  created = created + 1
end
local stride = tonumber(os.getenv("WRK_THREADS") or "1")

local lines, count, next_index = {}, 0, 0
local mode, body, base
local bodies, body_count = {}, 0
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
    for b in io.lines(args[3]) do
      if b ~= "" then
        body_count = body_count + 1
        bodies[body_count] = b
      end
    end
    if body_count == 0 then error("no bodies in " .. args[3]) end
    next_index = tonumber(args[4] or "0") + (thread_index or 0)
  else
    body = '{"payment_reference":"bench"}'
    next_index = tonumber(args[3] or "0") + (thread_index or 0)
  end
  base = wrk.path
end

function request()
  local line = lines[(next_index % count) + 1]
  next_index = next_index + stride
  if mode == "hold" then
    return wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. line,
      ["Idempotency-Key"] = run_id .. "-" .. next_index,
      ["Content-Type"] = "application/json",
    }, bodies[(next_index % body_count) + 1])
  end
  local id, token = line:match("^(%S+) (%S+)$")
  return wrk.format("POST", base .. "/" .. id .. "/confirm", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end
