-- bench/charge.lua: POST /api/users/{id}/balance/charge {"amount":A}, every request with its own
-- Idempotency-Key, so every request is a real charge (the balance-charge test of the reference
-- k6 suite). Distinct users (hot=0: all users of the token file, little lock contention) or
-- hot users (hot=10: all requests on the first 10 users, row-lock and distributed-lock
-- contention).
--   wrk -t2 -c100 -d30s --latency -s bench/charge.lua URL -- tokens=FILE hot=0 run=ID
-- Arguments: tokens=FILE, hot=N (default 0), amount=KRW (default 1000), run=ID (part of every
-- key; differs between wrk runs). Expected answers: 200 only.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

lib.counting()

local next_user, key_prefix, body
local counter = 0

function init(args)
   local opt = lib.parse_args(args, {hot = "0", amount = "1000"})
   local hot = lib.number(opt, "hot")
   local users = lib.load_users(lib.required(opt, "tokens"), hot > 0 and hot or nil)
   for _, u in ipairs(users) do u.path = "/api/users/" .. u.id .. "/balance/charge" end
   next_user = lib.cursor(users, lib.tid())
   key_prefix = "charge-" .. lib.required(opt, "run") .. "-" .. lib.tid() .. "-"
   body = string.format('{"amount":%d}', lib.number(opt, "amount"))
end

function request()
   local u = next_user()
   counter = counter + 1
   return lib.post(u.path, u, key_prefix .. counter, body)
end
