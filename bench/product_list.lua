-- bench/product_list.lua: GET /api/products?limit=L&cursor=C (the product list of the reference
-- k6 suite), C a product id in a shuffled order of the thread's own, never one of the last L,
-- so every page is full and pages vary over the catalog. Not cached: one MariaDB query each.
--   wrk -t2 -c100 -d30s --latency -s bench/product_list.lua URL -- products=FILE limit=20
-- No response() callback (see lib.lua).

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup

function init(args)
   local opt = lib.parse_args(args, {limit = "20"})
   local limit = lib.number(opt, "limit")
   local ids = lib.load_ids(lib.required(opt, "products"))
   local reqs = {}
   for i = 1, math.max(1, #ids - limit) do
      reqs[i] = lib.get("/api/products?limit=" .. limit .. "&cursor=" .. ids[i])
   end
   -- Fisher-Yates with a per-thread seed: each thread walks its own order of the pages.
   math.randomseed(7919 * lib.tid())
   for i = #reqs, 2, -1 do
      local j = math.random(i)
      reqs[i], reqs[j] = reqs[j], reqs[i]
   end
   lib.serve_prebuilt(reqs)
end
