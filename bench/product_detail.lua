-- bench/product_detail.lua: GET /api/products/{id}, round-robin over the product id file (the
-- cached product detail of the reference k6 suite). The cache is warmed by bench/fixtures.sh.
--   wrk -t2 -c100 -d30s --latency -s bench/product_detail.lua URL -- products=FILE
-- No response() callback (see lib.lua): wrk counts statuses >= 400 itself. The same script
-- against nginx returning a fixed 200 is the HTTP ceiling of the scripts without response().

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup

function init(args)
   local opt = lib.parse_args(args)
   local reqs = {}
   for _, id in ipairs(lib.load_ids(lib.required(opt, "products"))) do
      reqs[#reqs + 1] = lib.get("/api/products/" .. id)
   end
   lib.serve_prebuilt(reqs)
end
