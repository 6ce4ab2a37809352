-- bench/cart.lua: GET /api/users/{id}/cart with each user's own token, round-robin over the
-- users whose carts bench/fixtures.sh filled (the cached cart read of the reference k6 suite).
--   wrk -t2 -c100 -d30s --latency -s bench/cart.lua URL -- tokens=FILE users=1000
-- users=N: only the first N users of the token file (those with carts). No response() callback.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup

function init(args)
   local opt = lib.parse_args(args)
   local reqs = {}
   for _, u in ipairs(lib.load_users(lib.required(opt, "tokens"), tonumber(opt.users))) do
      reqs[#reqs + 1] = lib.get("/api/users/" .. u.id .. "/cart",
                                {["Authorization"] = "Bearer " .. u.token})
   end
   lib.serve_prebuilt(reqs)
end
