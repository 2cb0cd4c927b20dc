-- wrk script of bench/registry.py: each request verifies a random existing certificate through
-- the public page's API, GET /api/v1/registry/verify/GX-DR-<year>-<serial>.
-- REGISTRY_YEAR and REGISTRY_COUNT (serials 1..count were issued) come from the environment.

local year = tonumber(os.getenv("REGISTRY_YEAR") or "2026")
local count = tonumber(os.getenv("REGISTRY_COUNT") or "1")
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("seed", thread_id)
end

function init(args)
  -- A different, reproducible sequence per wrk thread.
  math.randomseed(1000003 * (tonumber(seed) or 1))
end

-- REGISTRY_WALK=1: walk the serials in order instead (1, 2, ..., count, 1, ...), to look every
-- certificate up once per pass (the benchmark's warm-up).
-- REGISTRY_WALK_FROM: the serials already walked (a walk goes on over several wrk runs).
local walk = os.getenv("REGISTRY_WALK") == "1"
local next_serial = tonumber(os.getenv("REGISTRY_WALK_FROM") or "0") % count

function request()
  local serial
  if walk then
    next_serial = next_serial % count + 1
    serial = next_serial
  else
    serial = math.random(1, count)
  end
  return wrk.format("GET", string.format("/api/v1/registry/verify/GX-DR-%d-%06d", year, serial))
end

-- REGISTRY_STOP_AFTER: stop after that many responses (the benchmark's cold run: each certificate
-- once, so each lookup is computed afresh); unset or 0 runs for the whole duration. Only then is
-- a response() defined: wrk parses every response for a script that has one.
local stop_after = tonumber(os.getenv("REGISTRY_STOP_AFTER") or "0")
if stop_after > 0 then
  local answered = 0
  function response(status, headers, body)
    answered = answered + 1
    if answered >= stop_after then
      wrk.thread:stop()
    end
  end
end
