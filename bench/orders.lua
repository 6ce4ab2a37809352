-- bench/orders.lua: wrk script for the order endpoints (issue 5's benchmark). Three modes:
--
--   mode=pay    order then pay: POST /api/orders (a user of the token file, 1-3 lines of
--               quantity 1 over the product file, a unique Idempotency-Key), and, once its 201
--               has come back, POST /api/orders/{orderId}/payment {"userId":N} with the same
--               user's token and a key of its own. wrk's Lua does not say which connection a
--               response came on, so each thread keeps a queue of created orders: response()
--               queues the orderId of every 201 Order, and request() sends the payment of the
--               oldest queued order if there is one, else a new order. Every connection thus
--               alternates (the request that follows a 201 on a connection is a payment), and
--               every created order is paid once. A pair is a 200 Payment.
--   mode=burst  duplicate-key bursts: all connections of all threads send the same order body
--               with the same Idempotency-Key, a new key (and order) every `burst` requests of
--               a thread; the body of key k is fixed by k (user k mod users, product k mod
--               products), so the threads agree on it. Expected: 201 (the first; then replays
--               with Idempotent-Replayed: true) or 409 IDEMPOTENCY_IN_FLIGHT, and one order per
--               key.
--   mode=hot    many buyers, one product: POST /api/orders of 1 unit of `product`, users
--               round-robin, unique keys: 201 until the stock is gone, then 409 OUT_OF_STOCK.
--
-- scripts/bench.sh runs it, e.g.
--   wrk -t2 -c100 -d30s --latency -s bench/orders.lua http://127.0.0.1:18080 \
--       -- mode=pay tokens=var/bench/rush-tokens.txt products=var/bench/product-ids.txt \
--          threads=2 run=RUNID
-- Arguments (after `--`, key=value):
--   mode=pay|burst|hot (required)
--   tokens=FILE    lines "userId token" (required)
--   products=FILE  product ids, one per line (pay, burst)
--   product=ID     the one product (hot)
--   threads=N      wrk's -t: users are dealt out to the threads (pay, hot), so no two threads
--                  order for the same user at once
--   burst=N        requests per key per thread (burst; default 100)
--   run=ID         run id, part of every key; must differ between wrk runs (required)
-- Keys: "bench-RUN-THREAD-COUNTER" (pay, hot), "burst-RUN-K" (burst). Besides lib's lines,
-- done() prints
--   shopd-bench: orders created=N paid=N keys=N
-- created = 201 Orders that were not replays, paid = 200 Payments, keys = burst keys sent.

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local lib = require("lib")

setup = lib.setup

-- Thread state read by done().
created, paid, keys = 0, 0, 0

local mode, users, by_id, products, key_prefix, burst
local next_user
local counter = 0
local queue, qhead, qtail = {}, 1, 0           -- pay: created orders not paid yet
local cur_k, cur_req                           -- burst: the current key's request

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

local function order_body(user_id, product_ids)
   local parts = {}
   for j, p in ipairs(product_ids) do parts[j] = '{"productId":' .. p .. ',"quantity":1}' end
   return '{"userId":' .. user_id .. ',"items":[' .. table.concat(parts, ",") .. ']}'
end

local function post(path, u, key, body)
   u.headers["Idempotency-Key"] = key
   return wrk.format("POST", path, u.headers, body)
end

function init(args)
   local opt = lib.parse_args(args, {threads = "1", burst = "100"})
   mode = opt.mode
   if mode ~= "pay" and mode ~= "burst" and mode ~= "hot" then
      lib.die("mode must be pay, burst or hot, not " .. tostring(mode))
   end
   if not opt.run or opt.run == "" then lib.die("missing run=ID (makes idempotency keys unique)") end
   local threads = tonumber(opt.threads) or lib.die("threads=N must be a number")
   local tid = tonumber(wrk.thread:get("tid")) or 1
   if tid > threads then lib.die("thread " .. tid .. " but threads=" .. threads .. ": pass wrk's -t") end
   local all = lib.load_users(opt.tokens)
   for _, u in ipairs(all) do
      u.headers = {["Authorization"] = "Bearer " .. u.token, ["Content-Type"] = "application/json"}
      u.pay_body = '{"userId":' .. u.id .. '}'
   end
   if mode == "burst" then
      users = all      -- every thread the same users: key k's body must be the same everywhere
      burst = tonumber(opt.burst) or lib.die("burst=N must be a number")
      if burst < 1 then lib.die("burst=N must be at least 1") end
      key_prefix = "burst-" .. opt.run .. "-"
   else
      users, by_id = {}, {}
      for k = tid, #all, threads do users[#users + 1] = all[k] end
      if #users == 0 then lib.die("no users for thread " .. tid) end
      for _, u in ipairs(users) do by_id[u.id] = u end
      key_prefix = "bench-" .. opt.run .. "-" .. tid .. "-"
      local i = 0
      next_user = function()
         i = i % #users + 1
         return users[i]
      end
   end
   if mode == "hot" then
      local p = opt.product and opt.product:match("^%d+$") or lib.die("missing product=ID")
      products = {p}
   else
      products = load_ids(opt.products)
      if mode == "pay" and #products < 3 then lib.die("mode=pay needs at least 3 products") end
   end
   math.randomseed(7919 * tid)
end

local function pay_request()
   counter = counter + 1
   if qhead <= qtail then
      local o = queue[qhead]
      queue[qhead] = nil
      qhead = qhead + 1
      return post("/api/orders/" .. o.order_id .. "/payment", o.user, key_prefix .. counter,
                  o.user.pay_body)
   end
   local u = next_user()
   -- 1, 2 or 3 lines, distinct products picked at random
   local lines, chosen = {}, {}
   for _ = 1, 1 + counter % 3 do
      local p
      repeat p = products[math.random(#products)] until not chosen[p]
      chosen[p] = true
      lines[#lines + 1] = p
   end
   return post("/api/orders", u, key_prefix .. counter, order_body(u.id, lines))
end

local function burst_request()
   local k = math.floor(counter / burst)
   counter = counter + 1
   if k ~= cur_k then
      cur_k = k
      local u = users[k % #users + 1]
      cur_req = post("/api/orders", u, key_prefix .. k,
                     order_body(u.id, {products[k % #products + 1]}))
      if k + 1 > keys then keys = k + 1 end
   end
   return cur_req
end

local function hot_request()
   counter = counter + 1
   local u = next_user()
   return post("/api/orders", u, key_prefix .. counter, order_body(u.id, products))
end

function request()
   if mode == "pay" then return pay_request() end
   if mode == "burst" then return burst_request() end
   return hot_request()
end

function response(status, headers, body)
   lib.response(status, headers, body)
   if status == 201 then
      if not (headers["Idempotent-Replayed"] or headers["idempotent-replayed"]) then
         created = created + 1
      end
      if mode == "pay" then
         local order_id = body:match('"orderId"%s*:%s*(%d+)')
         local user = by_id[body:match('"userId"%s*:%s*(%d+)') or ""]
         if order_id and user then
            qtail = qtail + 1
            queue[qtail] = {order_id = order_id, user = user}
         end
      end
   elseif status == 200 and mode == "pay" and body:find('"paymentId"', 1, true) then
      paid = paid + 1
   end
end

function done(summary, latency, requests)
   lib.done(summary, latency, requests)
   local c, p, k = 0, 0, 0
   for _, t in ipairs(lib.threads) do
      c = c + (t:get("created") or 0)
      p = p + (t:get("paid") or 0)
      k = math.max(k, t:get("keys") or 0)
   end
   io.write(string.format("shopd-bench: orders created=%d paid=%d keys=%d\n", c, p, k))
end
