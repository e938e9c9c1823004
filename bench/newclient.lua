-- wrk script: every request comes from a new client (a new IP in
-- X-Forwarded-For, no cookies), so the gateway scores it from scratch.
local counter = 0
request = function()
  counter = counter + 1
  local ip = string.format("10.%d.%d.%d", math.random(0, 255), math.floor(counter / 256) % 256, counter % 256)
  wrk.headers["X-Forwarded-For"] = ip
  return wrk.format(nil, nil)
end
