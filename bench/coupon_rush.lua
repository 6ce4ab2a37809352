-- bench/coupon_rush.lua: a first-come-first-served coupon rush (the FCFS coupon test of the
-- reference k6 suite: 10,000 users on a coupon of 50): POST /api/coupons/{id}/issue
-- {"userId":N}, each user with its own token. Users are dealt out to the threads, so the first
-- pass asks each user once; every later request is a repeat, answered 409 COUPON_SOLD_OUT (or
-- COUPON_ALREADY_ISSUED for the winners). After the first 50 the run measures the sold-out path.
--   wrk -t2 -c100 -d30s --latency -s bench/coupon_rush.lua URL -- tokens=FILE coupon=ID threads=2
-- Expected answers: 201, 409 COUPON_SOLD_OUT, 409 COUPON_ALREADY_ISSUED.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

lib.counting()
lib.expect{"409/COUPON_SOLD_OUT", "409/COUPON_ALREADY_ISSUED"}

function init(args)
   local opt = lib.parse_args(args)
   local coupon = lib.required(opt, "coupon")
   local path = "/api/coupons/" .. coupon .. "/issue"
   local reqs = {}
   for _, u in ipairs(lib.deal(lib.load_users(lib.required(opt, "tokens")), opt)) do
      reqs[#reqs + 1] = lib.post(path, u, nil, '{"userId":' .. u.id .. '}')
   end
   -- Dealt users in order, not from the cursor's offset: the first pass must reach every user.
   local i = 0
   request = function()
      i = i % #reqs + 1
      return reqs[i]
   end
end
