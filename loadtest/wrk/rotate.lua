-- wrk script: every request carries one header whose value rotates over the lines of a file.
--
--   wrk -t1 -c64 -d10s -s loadtest/wrk/rotate.lua URL -- FILE HEADER [PREFIX] [OFFSET] [METHOD]
--       [BODY]
--
-- FILE    one value per line (queue tickets, account tokens)
-- HEADER  e.g. X-Queue-Ticket or Authorization
-- PREFIX  put before each value, e.g. "Bearer " (default: nothing)
-- OFFSET  start at this line (0-based; default 0): a second run can skip the values a first
--         run used, so that every request of it carries a value the server has never seen
-- METHOD  GET (default) or POST (sent without a body)
-- BODY    with POST: a file whose content is sent as the JSON body of every request
-- The values wrap around when the run needs more requests than the file has lines.

-- Several wrk threads (-tN) interleave: thread i takes lines OFFSET+i, OFFSET+i+N, ... where N
-- is the environment's WRK_THREADS (the runner sets it; default 1), so no line is used twice.
local created = 0
function setup(thread)
  thread:set("thread_index", created)
  created = created + 1
end
local stride = tonumber(os.getenv("WRK_THREADS") or "1")

local values = {}
local count = 0
local next_index = 0
local header, prefix, method, body

function init(args)
  local file = args[1]
  header = args[2]
  prefix = args[3] or ""
  next_index = tonumber(args[4] or "0") + (thread_index or 0)
  method = args[5] or "GET"
  if args[6] then
    local f = assert(io.open(args[6], "r"))
    body = f:read("*a")
    f:close()
  end
  if not file or not header then
    error("usage: -- FILE HEADER [PREFIX] [OFFSET] [METHOD]")
  end
  for line in io.lines(file) do
    if line ~= "" then
      count = count + 1
      values[count] = line
    end
  end
  if count == 0 then error("no values in " .. file) end
end

function request()
  local value = values[(next_index % count) + 1]
  next_index = next_index + stride
  if body then
    return wrk.format(method, nil, { [header] = prefix .. value,
      ["Content-Type"] = "application/json" }, body)
  end
  return wrk.format(method, nil, { [header] = prefix .. value })
end
