-- bench/mkbatch.lua — builds benchmark batches {"events":[...]} of N events.
--
-- usage: lua5.4 bench/mkbatch.lua FIXTURE N > batches.txt
--
-- FIXTURE is a batch file such as tests/fixtures/batch-all-actions.json with
-- E events. The output holds one batch per line (compact JSON has no raw
-- newlines): batch k is the N events starting at event k*N, cycling through
-- the fixture, and there are lcm(N, E)/N batches, so every event appears
-- equally often and every batch size sees the same mix of actions (batches
-- of 1 are each event alone in turn). Events are copied without the
-- whitespace between tokens (E-goi posts compact JSON; the fixture is
-- pretty-printed for people); bytes inside strings are kept as they are.
--
-- Design: a small scanner, not a JSON library (a fresh Debian has none for
-- Lua): it tracks string state (with backslash escapes) and bracket depth,
-- which is all it takes to cut the "events" array into its elements. The
-- daemon itself validates the result (bench.sh runs `egoi-router test`).

local path, n = arg[1], math.tointeger(tonumber(arg[2] or ""))
if not path or not n or n < 1 then
  io.stderr:write("usage: lua5.4 mkbatch.lua FIXTURE N (N a positive integer)\n")
  os.exit(2)
end

local f, err = io.open(path, "rb")
if not f then
  io.stderr:write("mkbatch: " .. err .. "\n")
  os.exit(1)
end
local src = f:read("a")
f:close()

local function fail(msg)
  io.stderr:write(string.format("mkbatch: %s: %s\n", path, msg))
  os.exit(1)
end

-- Position of the '[' that opens the top-level "events" array.
local _, open = src:find('^%s*{%s*"events"%s*:%s*%[')
if not open then fail('does not start with {"events":[') end

local events = {}
local buf = {}          -- bytes of the event being copied
local depth = 0         -- bracket depth inside the events array
local in_str, esc = false, false
local closed = false

for i = open + 1, #src do
  local c = src:sub(i, i)
  if in_str then
    buf[#buf + 1] = c
    if esc then esc = false
    elseif c == "\\" then esc = true
    elseif c == '"' then in_str = false end
  elseif c == '"' then
    in_str = true
    buf[#buf + 1] = c
  elseif c == "{" or c == "[" then
    depth = depth + 1
    buf[#buf + 1] = c
  elseif c == "}" or c == "]" then
    if depth == 0 then
      if c ~= "]" then fail("unbalanced brackets") end
      closed = true
      break
    end
    depth = depth - 1
    buf[#buf + 1] = c
  elseif c == "," and depth == 0 then
    events[#events + 1] = table.concat(buf)
    buf = {}
  elseif not c:match("%s") then
    buf[#buf + 1] = c
  end
end
if not closed then fail("events array is not closed") end
if #buf > 0 then events[#events + 1] = table.concat(buf) end
if #events == 0 then fail("no events") end
for k, e in ipairs(events) do
  if e:sub(1, 1) ~= "{" or e:sub(-1) ~= "}" then
    fail("event " .. k .. " is not an object")
  end
end

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

local count = #events // gcd(n, #events)    -- lcm(n, E) / n
for k = 0, count - 1 do
  local out = {}
  for j = 1, n do out[j] = events[(k * n + j - 1) % #events + 1] end
  io.write('{"events":[', table.concat(out, ","), "]}\n")
end
