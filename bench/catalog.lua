-- bench/catalog.lua: wrk script for the catalog and cart read endpoints (issue 3's benchmark).
--
-- One script, four request mixes (mode=...), all prebuilt at init so request() costs a table
-- lookup:
--   product-detail  GET /api/products/{id}, round-robin over the product ids
--   product-list    GET /api/products?limit=L&cursor=C, C a product id taken in a shuffled
--                   order (a different one per thread), so the pages vary over the catalog; C is
--                   never one of the last L ids, so every page is full
--   cart-get        GET /api/users/{id}/cart with each user's own token, round-robin over users
--   top-products    GET /api/products/top?days=3&limit=5 and ?days=7&limit=10, alternating
-- scripts/bench.sh runs it, e.g.:
--   wrk -t2 -c100 -d30s --latency -s bench/catalog.lua http://127.0.0.1:18080 \
--       -- mode=product-detail products=var/bench/product-ids.txt
-- Arguments (after `--`, key=value):
--   mode=NAME       one of the four above (required)
--   products=FILE   product ids, one per line (product-detail, product-list)
--   tokens=FILE     lines "userId token" (cart-get)
--   limit=N         page size of product-list (default 20)
--
-- Unlike balance_get.lua and charge.lua this script defines no response() and no done(): a Lua
-- response() makes wrk build a headers table and a body string for every response, which costs
-- wrk CPU on a 2-core machine shared with shopd and lowers the numbers measured. Errors are
-- counted by wrk itself ("Non-2xx or 3xx responses", i.e. statuses >= 400), and the set-up in
-- scripts/bench.sh checks every endpoint's answers once before measuring.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup   -- gives each thread its id (used to spread the threads' cursors)

local function load_ids(path)
   if not path or path == "" then lib.die("missing products=FILE") end
   local f, err = io.open(path, "r")
   if not f then lib.die("cannot open product id file: " .. tostring(err)) end
   local ids = {}
   for line in f:lines() do
      local id = line:match("^%s*(%d+)%s*$")
      if id then ids[#ids + 1] = id end
   end
   f:close()
   if #ids == 0 then lib.die("no product ids in " .. path) end
   return ids
end

local function get(path, headers)
   return wrk.format("GET", path, headers)
end

local next_request

function init(args)
   local opt = lib.parse_args(args, {limit = "20"})
   local tid = tonumber(wrk.thread:get("tid")) or 1
   local reqs = {}
   if opt.mode == "product-detail" then
      for _, id in ipairs(load_ids(opt.products)) do
         reqs[#reqs + 1] = get("/api/products/" .. id)
      end
   elseif opt.mode == "product-list" then
      local limit = tonumber(opt.limit) or lib.die("limit=N must be a number")
      local ids = load_ids(opt.products)
      local n = #ids > limit and #ids - limit or #ids
      for i = 1, n do
         reqs[i] = get("/api/products?limit=" .. limit .. "&cursor=" .. ids[i])
      end
      -- Fisher-Yates with a per-thread seed: each thread walks its own order of the pages.
      math.randomseed(7919 * tid)
      for i = #reqs, 2, -1 do
         local j = math.random(i)
         reqs[i], reqs[j] = reqs[j], reqs[i]
      end
   elseif opt.mode == "cart-get" then
      for _, u in ipairs(lib.load_users(opt.tokens)) do
         reqs[#reqs + 1] = get("/api/users/" .. u.id .. "/cart",
                               {["Authorization"] = "Bearer " .. u.token})
      end
   elseif opt.mode == "top-products" then
      reqs[1] = get("/api/products/top?days=3&limit=5")
      reqs[2] = get("/api/products/top?days=7&limit=10")
   else
      lib.die("mode must be product-detail, product-list, cart-get or top-products, not " ..
              tostring(opt.mode))
   end
   local items = {}
   for i, r in ipairs(reqs) do items[i] = {request = r} end
   local nxt = lib.cursor(items, tid)
   next_request = function() return nxt().request end
end

function request()
   return next_request()
end
