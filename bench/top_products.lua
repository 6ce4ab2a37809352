-- bench/top_products.lua: GET /api/products/top?days=3&limit=5 and ?days=7&limit=10, alternating
-- (the top-products read of the reference k6 suite; cached 5 minutes).
--   wrk -t2 -c100 -d30s --latency -s bench/top_products.lua URL
-- No response() callback (see lib.lua).

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup

function init(args)
   lib.parse_args(args)
   lib.serve_prebuilt({lib.get("/api/products/top?days=3&limit=5"),
                       lib.get("/api/products/top?days=7&limit=10")})
end
