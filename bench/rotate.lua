-- wrk script: POST one body after another from a list of files (bench/wrk.py).
-- Arguments after "--": listing, content type, first body index, delay in ms
-- between two requests of one connection (0 = closed loop), accept header.
local bodies = {}
local cursor = 0
local delay_ms = 0
local headers = {}

function init(args)
  for path in io.lines(args[1]) do
    local file = assert(io.open(path, "rb"))
    bodies[#bodies + 1] = file:read("*a")
    file:close()
  end
  headers["Content-Type"] = args[2]
  cursor = tonumber(args[3])
  delay_ms = tonumber(args[4])
  headers["Accept"] = args[5]
end

function request()
  local body = bodies[(cursor % #bodies) + 1]
  cursor = cursor + 1
  return wrk.format("POST", nil, headers, body)
end

function delay()
  return delay_ms
end
