-- bench/order_burst.lua: duplicate-key order bursts (the duplicate-order test of the reference
-- k6 suite). All connections of all threads send the same order with the same Idempotency-Key,
-- a new key every `burst` requests of a thread; key k's body is fixed by k (user k mod users,
-- product k mod products), so the threads agree on it. Expected: one 201 per key, the rest
-- replays of it (Idempotent-Replayed: true) or 409 IDEMPOTENCY_IN_FLIGHT; one order per key.
--   wrk -t2 -c100 -d30s --latency -s bench/order_burst.lua URL -- tokens=FILE products=FILE \
--       burst=100 run=ID
-- Prints "shopd-bench: extra created=N" (first, non-replayed 201s) and "shopd-bench: keys=N".

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

lib.counting({created = "created"})
lib.expect{"409/IDEMPOTENCY_IN_FLIGHT"}
created, keys = 0, 0

local users, products, key_prefix, burst, cur_k, cur_req
local counter = 0

function init(args)
   local opt = lib.parse_args(args, {burst = "100"})
   users = lib.load_users(lib.required(opt, "tokens"))
   products = lib.load_ids(lib.required(opt, "products"))
   burst = lib.number(opt, "burst")
   if burst < 1 then lib.die("burst=N must be at least 1") end
   key_prefix = "burst-" .. lib.required(opt, "run") .. "-"
end

function request()
   local k = math.floor(counter / burst)
   counter = counter + 1
   if k ~= cur_k then
      cur_k = k
      local u = users[k % #users + 1]
      cur_req = lib.post("/api/orders", u, key_prefix .. k,
                         lib.order_body(u.id, {products[k % #products + 1]}))
      keys = k + 1
   end
   return cur_req
end

function response(status, headers, body)
   lib.response(status, headers, body)
   if status == 201 and not (headers["Idempotent-Replayed"] or headers["idempotent-replayed"]) then
      created = created + 1
   end
end

local counted_done = done
function done(summary, latency, requests)
   counted_done(summary, latency, requests)
   local k = 0
   for _, t in ipairs(lib.threads) do k = math.max(k, t:get("keys") or 0) end
   io.write(string.format("shopd-bench: keys=%d\n", k))
end
