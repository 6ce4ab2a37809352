-- bench/lib.lua: helpers shared by the shopd wrk scripts (balance_get.lua, charge.lua,
-- coupon_rush.lua, orders.lua, and catalog.lua, which uses only the argument parsing, the token
-- reader, the cursor and setup: it installs no response()/done(), see its header).
--
-- Not run on its own: the scripts load it with require("lib") from their own directory.
-- It provides
--   * argument parsing (wrk passes what follows `--` to init(args); we use key=value words),
--   * the token file reader (one line "userId token" per user, written by scripts/bench.sh),
--   * a per-thread user cursor that spreads requests over distinct users,
--   * the setup/response/done hooks: every response is counted by status in the thread's own
--     Lua state (and every non-2xx also by the `code` of its problem+json body), and done() sums
--     the threads and prints two machine-readable lines
--       shopd-bench: responses=N 2xx=N non2xx=N replayed=N statuses=200:N,409:N
--       shopd-bench: codes=409/COUPON_SOLD_OUT:N,503/UNAVAILABLE:N   ("-" when none)
--     plus one sample body of each kind (status and code) of non-2xx response met.
--     scripts/bench.sh parses those lines.
--
-- wrk runs one Lua state for setup()/done() and one more per thread for init()/request()/
-- response(); values cross between them only through thread:set()/thread:get().

local M = {}

-- parse_args({"tokens=f", "mode=hot"}) -> {tokens="f", mode="hot"}
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

function M.die(msg)
   io.stderr:write("bench: " .. msg .. "\n")
   os.exit(2)
end

-- Reads up to `limit` users from the token file: array of {id = "42", token = "eyJ..."}.
function M.load_users(path, limit)
   if not path or path == "" then M.die("missing tokens=FILE") end
   local f, err = io.open(path, "r")
   if not f then M.die("cannot open token file: " .. tostring(err)) end
   local users = {}
   for line in f:lines() do
      local id, token = line:match("^(%d+)%s+(%S+)%s*$")
      if id then
         users[#users + 1] = {id = id, token = token}
         if limit and #users >= limit then break end
      end
   end
   f:close()
   if #users == 0 then M.die("no 'userId token' lines in " .. path) end
   return users
end

-- A cursor over the users for one thread. Each thread walks all users round-robin, starting
-- at a golden-ratio offset of its thread id, so threads stay far apart on the ring and
-- concurrent requests rarely hit the same user (with 1000 users and 50 connections per
-- thread, never within one thread). With 10 users (hot mode) they collide constantly, which
-- is the point of that mode.
function M.cursor(users, tid)
   local n = #users
   local start = math.floor(((tid - 1) * 0.6180339887 % 1) * n)
   local i = start
   return function()
      i = i % n + 1
      return users[i]
   end
end

-- Main state: give every thread an id (1, 2, ...) before its init() runs, and remember it.
local threads = {}
function M.setup(thread)
   threads[#threads + 1] = thread
   thread:set("tid", #threads)
end

-- The threads (main state only), for scripts whose done() sums counters of their own.
M.threads = threads

-- Thread state: counters, read back by done() with thread:get().
statuses = {}        -- status code -> count
codes = {}           -- "status/CODE" -> count, for non-2xx responses ("-" when no code)
replayed = 0         -- responses carrying Idempotent-Replayed (0 unless keys repeat on purpose)
samples = {}         -- "status body" of the first non-2xx response of each status/code

function M.response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if headers["Idempotent-Replayed"] or headers["idempotent-replayed"] then
      replayed = replayed + 1
   end
   if status < 200 or status > 299 then
      local kind = status .. "/" .. ((body or ""):match('"code"%s*:%s*"([%w_]+)"') or "-")
      local n = codes[kind]
      if not n and #samples < 8 then
         samples[#samples + 1] = status .. " " .. (body or ""):sub(1, 300):gsub("%s+", " ")
      end
      codes[kind] = (n or 0) + 1
   end
end

-- Main state: sum the threads' counters and print the machine-readable line.
function M.done(summary, latency, requests)
   local total, ok, rep, by, kinds = 0, 0, 0, {}, {}
   local shown = {}
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
   end
   local function joined(tbl)
      local keys, parts = {}, {}
      for k in pairs(tbl) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do parts[#parts + 1] = k .. ":" .. tbl[k] end
      return #parts > 0 and table.concat(parts, ",") or "-"
   end
   io.write(string.format("shopd-bench: responses=%d 2xx=%d non2xx=%d replayed=%d statuses=%s\n",
                          total, ok, total - ok, rep, joined(by)))
   io.write("shopd-bench: codes=" .. joined(kinds) .. "\n")
   for _, s in ipairs(shown) do io.write("shopd-bench: sample non-2xx: " .. s .. "\n") end
end

return M
