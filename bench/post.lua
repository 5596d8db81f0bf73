-- bench/post.lua — wrk script for `make bench` (scripts/bench.sh).
--
-- Posts webhook batches to the endpoint wrk is pointed at. Environment:
--   BENCH_BODIES  file with one {"events":[...]} batch per line
--                 (bench/mkbatch.lua); requests cycle through them, each
--                 wrk thread starting at a different line
--   BENCH_TOKEN   sent as X-Router-Token
--
-- Every answer other than 200 is counted per thread in response() and the
-- first one's status and body kept; done() prints one machine-readable
-- line for bench.sh, which fails the run when anything went wrong:
--   BENCH requests=N seconds=S rps=R p50_us=.. p99_us=.. max_us=.. non200=..
--         connect=.. read=.. write=.. timeout=..
--   BENCH_FIRST_BAD <status> <body, first 200 bytes>   (only when non200 > 0)
--
-- Threads: setup() and done() run in wrk's main Lua state; init(),
-- request() and response() run in each thread's own state, so counters
-- are thread globals read back with thread:get().

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  threads[#threads + 1] = thread
end

-- Per-thread state (globals so that done() can read them).
non200 = 0
first_bad = ""

local requests = {}
local next_req = 1

function init(args)
  local path = os.getenv("BENCH_BODIES")
  local token = os.getenv("BENCH_TOKEN")
  if not path or not token then
    error("post.lua: BENCH_BODIES and BENCH_TOKEN must be set")
  end
  local f, err = io.open(path, "rb")
  if not f then error("post.lua: " .. err) end
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Router-Token"] = token,
  }
  if os.getenv("BENCH_CLOSE") == "1" then
    headers["Connection"] = "close"   -- a new TLS connection per batch
  end
  for line in f:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  f:close()
  if #requests == 0 then error("post.lua: no batches in " .. path) end
  next_req = (thread_no or 0) * 7 % #requests + 1
end

function request()
  local r = requests[next_req]
  next_req = next_req % #requests + 1
  return r
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. tostring(body or ""):sub(1, 200)
    end
  end
end

function done(summary, latency, requests_done)
  local bad, sample = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
    local s = t:get("first_bad") or ""
    if sample == "" and s ~= "" then sample = s end
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d max_us=%d " ..
    "non200=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency.max,
    bad, e.connect, e.read, e.write, e.timeout))
  if sample ~= "" then
    io.write("BENCH_FIRST_BAD ", (sample:gsub("[%c]", " ")), "\n")
  end
end
