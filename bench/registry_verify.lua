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

function request()
  local serial = math.random(1, count)
  return wrk.format("GET", string.format("/api/v1/registry/verify/GX-DR-%d-%06d", year, serial))
end
