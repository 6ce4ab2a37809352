-- bench/balance_get.lua: wrk script for GET /api/users/{id}/balance, spread over many users.
--
-- Measures the authenticated read path (JWT check + balance lookup). scripts/bench.sh runs it:
--   wrk -t2 -c100 -d30s --latency -s bench/balance_get.lua http://127.0.0.1:18080 \
--       -- tokens=var/bench/tokens.txt
-- Arguments (after `--`, key=value):
--   tokens=FILE   lines "userId token" (required)
--   users=N       use only the first N users of the file (default: all)
-- Each thread walks the users round-robin (see lib.cursor); the requests are prebuilt at init,
-- so request() costs one table lookup. The same script, pointed at the nginx ceiling server,
-- measures what wrk and the loopback can do with identical requests.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup
response = lib.response
done = lib.done

local next_request

function init(args)
   local opt = lib.parse_args(args, {users = nil})
   local users = lib.load_users(opt.tokens, tonumber(opt.users))
   for _, u in ipairs(users) do
      u.request = wrk.format("GET", "/api/users/" .. u.id .. "/balance",
                             {["Authorization"] = "Bearer " .. u.token})
   end
   local nxt = lib.cursor(users, tonumber(wrk.thread:get("tid")) or 1)
   next_request = function() return nxt().request end
end

function request()
   return next_request()
end
