-- bench/order_pay.lua: order then pay (the order + payment test of the reference k6 suite).
-- POST /api/orders (a user of this thread, 1-3 lines of quantity 1 over the product file, a
-- unique Idempotency-Key), then, once its 201 came back, POST /api/orders/{id}/payment
-- {"userId":N} as the same user with a key of its own. wrk's Lua does not say on which
-- connection an answer came, so each thread queues the created orders: request() sends the
-- payment of the oldest queued order if there is one, else a new order. Every created order is
-- paid once; a pair is a 200 Payment.
--   wrk -t2 -c100 -d30s --latency -s bench/order_pay.lua URL -- tokens=FILE products=FILE \
--       threads=2 run=ID
-- The users need a balance (bench/fixtures.sh charges them). Expected answers: 201 and 200.
-- Prints "shopd-bench: extra created=N paid=N" besides lib's lines.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

lib.counting({created = "created", paid = "paid"})
created, paid = 0, 0

local by_id, products, next_user, key_prefix
local counter = 0
local queue, head, tail = {}, 1, 0

function init(args)
   local opt = lib.parse_args(args)
   local users = lib.deal(lib.load_users(lib.required(opt, "tokens")), opt)
   by_id = {}
   for _, u in ipairs(users) do
      by_id[u.id] = u
      u.pay_body = '{"userId":' .. u.id .. '}'
   end
   next_user = lib.cursor(users, 1)
   products = lib.load_ids(lib.required(opt, "products"))
   if #products < 3 then lib.die("order_pay needs at least 3 products") end
   key_prefix = "pay-" .. lib.required(opt, "run") .. "-" .. lib.tid() .. "-"
   math.randomseed(7919 * lib.tid())
end

function request()
   counter = counter + 1
   if head <= tail then
      local o = queue[head]
      queue[head] = nil
      head = head + 1
      return lib.post("/api/orders/" .. o.order_id .. "/payment", o.user, key_prefix .. counter,
                      o.user.pay_body)
   end
   local u = next_user()
   local lines, chosen = {}, {}
   for _ = 1, 1 + counter % 3 do
      local p
      repeat p = products[math.random(#products)] until not chosen[p]
      chosen[p] = true
      lines[#lines + 1] = p
   end
   return lib.post("/api/orders", u, key_prefix .. counter, lib.order_body(u.id, lines))
end

function response(status, headers, body)
   lib.response(status, headers, body)
   if status == 201 then
      created = created + 1
      local order_id = body:match('"orderId"%s*:%s*(%d+)')
      local user = by_id[body:match('"userId"%s*:%s*(%d+)') or ""]
      if order_id and user then
         tail = tail + 1
         queue[tail] = {order_id = order_id, user = user}
      end
   elseif status == 200 and body:find('"paymentId"', 1, true) then
      paid = paid + 1
   end
end
