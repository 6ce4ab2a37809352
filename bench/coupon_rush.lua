-- bench/coupon_rush.lua: wrk script for a first-come-first-served coupon rush (issue 4's
-- benchmark): POST /api/coupons/{id}/issue {"userId":N}, each user with its own token.
--
-- scripts/bench.sh runs it once per run against a freshly created coupon, e.g.
--   wrk -t2 -c100 -d30s --latency -s bench/coupon_rush.lua http://127.0.0.1:18080 \
--       -- tokens=var/bench/rush-tokens.txt coupon=42 threads=2
-- Arguments (after `--`, key=value):
--   tokens=FILE   lines "userId token" (required; the bench uses 10,000 users)
--   coupon=ID     the coupon to issue (required)
--   threads=N     wrk's -t (required when it is not 1): the users are dealt out to the threads
--                 (thread t takes users t, t+N, t+2N, ...), so the first pass over the users
--                 asks each user once. Each thread then walks its share round-robin: once a
--                 run has gone through all the users, every further request is a repeat,
--                 answered 409 COUPON_ALREADY_ISSUED (the user holds one) or COUPON_SOLD_OUT.
-- The requests are prebuilt at init, so request() costs one table lookup. Responses are
-- counted by status and by the problem's `code` (lib.response), which is how the status mix
-- (201 / 409 COUPON_SOLD_OUT / 409 COUPON_ALREADY_ISSUED / other) is reported.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup
response = lib.response
done = lib.done

local reqs, n, i = {}, 0, 0

function init(args)
   local opt = lib.parse_args(args, {threads = "1"})
   local coupon = opt.coupon and opt.coupon:match("^%d+$") or lib.die("missing coupon=ID")
   local threads = tonumber(opt.threads) or lib.die("threads=N must be a number")
   local tid = tonumber(wrk.thread:get("tid")) or 1
   if tid > threads then lib.die("thread " .. tid .. " but threads=" .. threads .. ": pass wrk's -t") end
   local users = lib.load_users(opt.tokens)
   local path = "/api/coupons/" .. coupon .. "/issue"
   for k = tid, #users, threads do
      local u = users[k]
      reqs[#reqs + 1] = wrk.format("POST", path,
                                   {["Authorization"] = "Bearer " .. u.token,
                                    ["Content-Type"] = "application/json"},
                                   '{"userId":' .. u.id .. '}')
   end
   n = #reqs
   if n == 0 then lib.die("no users for thread " .. tid) end
end

function request()
   i = i % n + 1
   return reqs[i]
end
