-- bench/charge.lua: wrk script for POST /api/users/{id}/balance/charge, every request with its
-- own Idempotency-Key, so every request is a real charge (a new history row).
--
-- Measures the write path: JWT check, idempotency-key insert, balance update and history row in
-- one MariaDB transaction. Two modes:
--   mode=distinct  requests spread over all users of the token file (little lock contention)
--   mode=hot       all requests go to the first `hot` users (default 10): row-lock contention
-- scripts/bench.sh runs it:
--   wrk -t2 -c100 -d30s --latency -s bench/charge.lua http://127.0.0.1:18080 \
--       -- tokens=var/bench/tokens.txt mode=hot run=RUNID
-- Arguments (after `--`, key=value):
--   tokens=FILE   lines "userId token" (required)
--   mode=distinct|hot   (default distinct)
--   hot=N         users in hot mode (default 10)
--   run=ID        run id, part of every key; must differ between wrk runs (required)
--   amount=N      KRW per charge (default 1000; 1..10,000,000)
-- Keys are "bench-RUN-THREAD-COUNTER": unique per request across threads and runs.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup
response = lib.response
done = lib.done

local next_user, key_prefix, body
local counter = 0

function init(args)
   local opt = lib.parse_args(args, {mode = "distinct", hot = "10", amount = "1000"})
   if not opt.run or opt.run == "" then lib.die("missing run=ID (makes idempotency keys unique)") end
   local limit
   if opt.mode == "hot" then
      limit = tonumber(opt.hot) or lib.die("hot=N must be a number")
   elseif opt.mode ~= "distinct" then
      lib.die("mode must be distinct or hot, not " .. opt.mode)
   end
   local users = lib.load_users(opt.tokens, limit)
   for _, u in ipairs(users) do
      u.path = "/api/users/" .. u.id .. "/balance/charge"
      u.headers = {["Authorization"] = "Bearer " .. u.token,
                   ["Content-Type"] = "application/json"}
   end
   local tid = tonumber(wrk.thread:get("tid")) or 1
   next_user = lib.cursor(users, tid)
   key_prefix = "bench-" .. opt.run .. "-" .. tid .. "-"
   body = string.format('{"amount":%d}', tonumber(opt.amount) or lib.die("amount=N must be a number"))
end

function request()
   local u = next_user()
   counter = counter + 1
   u.headers["Idempotency-Key"] = key_prefix .. counter
   return wrk.format("POST", u.path, u.headers, body)
end
