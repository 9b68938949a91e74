-- wrk script: each request carries the next of many distinct tokens, read
-- from the file named by the TOKENS environment variable. Each thread
-- starts at its own offset so that threads do not send the same token.
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end

local counter = 0
function setup(thread)
  thread:set("offset", counter * 997)
  counter = counter + 1
end

local i = 0
function request()
  i = i + 1
  local tok = tokens[((offset or 0) + i) % #tokens + 1]
  return wrk.format("GET", "/api/x", { ["Authorization"] = "Bearer " .. tok })
end
