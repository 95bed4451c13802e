-- wrk script: POST one body after another from a list of files (bench/wrk.py).
-- Arguments after "--": listing, content type, first body index, mean delay in ms
-- between an answer and the connection's next request (0 = closed loop), accept
-- header. The delays are exponential (random waits, so that the connections' requests
-- arrive as a Poisson stream): a fixed delay sends back together the connections whose
-- answers left together, and the offered load comes in bursts (bench/measure.py).
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
  math.randomseed(os.time() + cursor)
  delay_ms = tonumber(args[4])
  headers["Accept"] = args[5]
end

function request()
  local body = bodies[(cursor % #bodies) + 1]
  cursor = cursor + 1
  return wrk.format("POST", nil, headers, body)
end

function delay()
  if delay_ms == 0 then
    return 0
  end
  return -math.log(1 - math.random()) * delay_ms
end
