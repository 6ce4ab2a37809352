-- bench/lib.lua: what every wrk scenario script of bench/ shares. Not run on its own: each script
-- loads it with require("lib") from its own directory (see the two lines at the top of each).
--
--   * arguments: wrk passes what follows `--` to init(args); we use key=value words
--   * fixtures written by bench/fixtures.sh: the token file (lines "userId token") and id files
--     (one id a line)
--   * request builders: GET, authenticated GET, POST with an Idempotency-Key, order bodies
--   * a per-thread cursor that walks prebuilt items round-robin, threads far apart on the ring
--   * response accounting (for scripts that need to see responses): every response counted by
--     status and, when not 2xx, by the `code` of its problem+json body; done() sums the threads
--     and prints machine-readable lines that bench/wrk.sh parses:
--       shopd-bench: responses=N 2xx=N non2xx=N unexpected=N replayed=N statuses=200:N,409:N
--       shopd-bench: codes=409/COUPON_SOLD_OUT:N   ("-" when none)
--       shopd-bench: sample unexpected: <status> <body>   (at most 10)
--     A response is expected when its status is 2xx or its "status/CODE" was declared with
--     lib.expect{...} by the script; the smoke pass of `make test` fails on anything else.
--     Scripts that define no response() (the catalog reads) leave the counting to wrk itself:
--     a Lua response() makes wrk build a header table and a body string per response, which on
--     a 2-core machine shared with shopd costs measurable throughput.
--
-- wrk runs one Lua state for setup()/done() and one per thread for init()/request()/response();
-- values cross between them only through thread:set()/thread:get(). Every script's top level
-- runs in all of them, so what lib.expect declares there is known to done() too.

local M = {}

function M.die(msg)
   io.stderr:write("bench: " .. msg .. "\n")
   os.exit(2)
end

-- parse_args({"tokens=f", "hot=10"}, {hot = "0"}) -> {tokens = "f", hot = "10"}
function M.parse_args(args, defaults)
   local opt = {}
   for k, v in pairs(defaults or {}) do opt[k] = v end
   for _, a in ipairs(args or {}) do
      local k, v = a:match("^([%w_]+)=(.*)$")
      if not k then M.die("argument '" .. a .. "' is not key=value") end
      opt[k] = v
   end
   return opt
end

function M.number(opt, key)
   return tonumber(opt[key]) or M.die(key .. "=N must be a number, not " .. tostring(opt[key]))
end

function M.required(opt, key)
   local v = opt[key]
   if not v or v == "" then M.die("missing " .. key .. "=...") end
   return v
end

local function lines_of(path, what)
   if not path or path == "" then M.die("missing " .. what .. " file") end
   local f, err = io.open(path, "r")
   if not f then M.die("cannot open " .. what .. " file: " .. tostring(err)) end
   return f
end

-- Users of a token file, at most `limit`: array of {id = "42", token = "eyJ...", headers = {...}},
-- headers carrying the bearer token and the JSON content type.
function M.load_users(path, limit)
   local f = lines_of(path, "token")
   local users = {}
   for line in f:lines() do
      local id, token = line:match("^(%d+)%s+(%S+)%s*$")
      if id then
         users[#users + 1] = {id = id, token = token,
                              headers = {["Authorization"] = "Bearer " .. token,
                                         ["Content-Type"] = "application/json"}}
         if limit and #users >= limit then break end
      end
   end
   f:close()
   if #users == 0 then M.die("no 'userId token' lines in " .. path) end
   return users
end

-- The ids of an id file, as strings.
function M.load_ids(path)
   local f = lines_of(path, "id")
   local ids = {}
   for line in f:lines() do
      local id = line:match("^%s*(%d+)%s*$")
      if id then ids[#ids + 1] = id end
   end
   f:close()
   if #ids == 0 then M.die("no ids in " .. path) end
   return ids
end

-- The users dealt to this thread (thread t of n takes users t, t+n, ...), so that no two
-- threads act for the same user at once. `threads` must be wrk's -t.
function M.deal(users, opt)
   local threads, tid = M.number(opt, "threads"), M.tid()
   if tid > threads then M.die("thread " .. tid .. " but threads=" .. threads .. ": pass wrk's -t") end
   local mine = {}
   for k = tid, #users, threads do mine[#mine + 1] = users[k] end
   if #mine == 0 then M.die("no users for thread " .. tid) end
   return mine
end

function M.get(path, headers)
   return wrk.format("GET", path, headers)
end

-- A POST as `user` with an Idempotency-Key (nil = none). The user's header table is reused.
function M.post(path, user, key, body)
   user.headers["Idempotency-Key"] = key
   return wrk.format("POST", path, user.headers, body)
end

-- {"userId":U,"items":[{"productId":P,"quantity":1},...]}
function M.order_body(user_id, product_ids)
   local parts = {}
   for j, p in ipairs(product_ids) do parts[j] = '{"productId":' .. p .. ',"quantity":1}' end
   return '{"userId":' .. user_id .. ',"items":[' .. table.concat(parts, ",") .. ']}'
end

-- A function returning the items one after another, round-robin, starting at a golden-ratio
-- offset of the thread id: threads stay far apart on the ring, so with many items concurrent
-- requests rarely share one, and with a few (the hot users) they collide, which is the point.
function M.cursor(items, tid)
   local n = #items
   local i = math.floor(((tid - 1) * 0.6180339887 % 1) * n)
   return function()
      i = i % n + 1
      return items[i]
   end
end

-- Installs request() over requests prebuilt at init: request() then costs one table lookup.
function M.serve_prebuilt(reqs)
   if #reqs == 0 then M.die("no requests to send") end
   local nxt = M.cursor(reqs, M.tid())
   _G.request = nxt
end

-- ---- threads --------------------------------------------------------------------------------

local threads = {}
M.threads = threads

-- Main state: gives every thread an id (1, 2, ...) before its init() runs.
function M.setup(thread)
   threads[#threads + 1] = thread
   thread:set("tid", #threads)
end

function M.tid()
   return tonumber(wrk.thread:get("tid")) or 1
end

-- ---- response accounting --------------------------------------------------------------------

local expected = {}

-- expect{"409/COUPON_SOLD_OUT", "409/IDEMPOTENCY_IN_FLIGHT"}: non-2xx answers that the
-- scenario expects (and that do not count as errors).
function M.expect(kinds)
   for _, k in ipairs(kinds) do expected[k] = true end
end

-- Thread state, read back by done() with thread:get().
statuses = {}   -- status -> count
codes = {}      -- "status/CODE" -> count for non-2xx answers ("-" when the body has no code)
replayed = 0    -- answers carrying Idempotent-Replayed: true
samples = {}    -- the first answer of each unexpected kind

function M.response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if headers["Idempotent-Replayed"] or headers["idempotent-replayed"] then
      replayed = replayed + 1
   end
   if status < 200 or status > 299 then
      local kind = status .. "/" .. ((body or ""):match('"code"%s*:%s*"([%w_]+)"') or "-")
      local n = codes[kind]
      if not n and not expected[kind] and #samples < 8 then
         samples[#samples + 1] = status .. " " .. (body or ""):sub(1, 300):gsub("%s+", " ")
      end
      codes[kind] = (n or 0) + 1
   end
end

local function joined(tbl)
   local keys, parts = {}, {}
   for k in pairs(tbl) do keys[#keys + 1] = k end
   table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
   for _, k in ipairs(keys) do parts[#parts + 1] = k .. ":" .. tbl[k] end
   return #parts > 0 and table.concat(parts, ",") or "-"
end

-- Main state: sums the threads' counters and prints the shopd-bench lines. `extra`, when
-- given, is a table of further counters (name -> thread variable) summed and printed as
--   shopd-bench: extra name=N name=N
function M.done(extra)
   local total, ok, rep, unexpected, by, kinds, shown, sums = 0, 0, 0, 0, {}, {}, {}, {}
   for _, t in ipairs(threads) do
      for status, n in pairs(t:get("statuses") or {}) do
         by[status] = (by[status] or 0) + n
         total = total + n
         if status >= 200 and status <= 299 then ok = ok + n end
      end
      for kind, n in pairs(t:get("codes") or {}) do kinds[kind] = (kinds[kind] or 0) + n end
      rep = rep + (t:get("replayed") or 0)
      for _, s in ipairs(t:get("samples") or {}) do
         if #shown < 10 then shown[#shown + 1] = s end
      end
      for name, var in pairs(extra or {}) do sums[name] = (sums[name] or 0) + (t:get(var) or 0) end
   end
   for kind, n in pairs(kinds) do
      if not expected[kind] then unexpected = unexpected + n end
   end
   io.write(string.format("shopd-bench: responses=%d 2xx=%d non2xx=%d unexpected=%d replayed=%d statuses=%s\n",
                          total, ok, total - ok, unexpected, rep, joined(by)))
   io.write("shopd-bench: codes=" .. joined(kinds) .. "\n")
   if extra then
      local parts = {}
      for name in pairs(extra) do parts[#parts + 1] = name .. "=" .. sums[name] end
      table.sort(parts)
      io.write("shopd-bench: extra " .. table.concat(parts, " ") .. "\n")
   end
   for _, s in ipairs(shown) do io.write("shopd-bench: sample unexpected: " .. s .. "\n") end
end

-- Installs setup/response/done for a script that counts its answers.
function M.counting(extra)
   _G.setup = M.setup
   _G.response = M.response
   _G.done = function() M.done(extra) end
end

return M
