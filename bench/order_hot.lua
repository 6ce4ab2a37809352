-- bench/order_hot.lua: many buyers, one product (the hot-product order test of the reference k6
-- suite): POST /api/orders of 1 unit of `product`, users round-robin, unique keys: 201 until
-- the stock is gone, then 409 OUT_OF_STOCK.
--   wrk -t2 -c100 -d30s --latency -s bench/order_hot.lua URL -- tokens=FILE product=ID \
--       threads=2 run=ID
-- Expected answers: 201, 409 OUT_OF_STOCK.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

lib.counting()
lib.expect{"409/OUT_OF_STOCK"}

local next_user, key_prefix, product
local counter = 0

function init(args)
   local opt = lib.parse_args(args)
   next_user = lib.cursor(lib.deal(lib.load_users(lib.required(opt, "tokens")), opt), 1)
   product = lib.required(opt, "product")
   key_prefix = "hot-" .. lib.required(opt, "run") .. "-" .. lib.tid() .. "-"
end

function request()
   counter = counter + 1
   local u = next_user()
   return lib.post("/api/orders", u, key_prefix .. counter, lib.order_body(u.id, {product}))
end
