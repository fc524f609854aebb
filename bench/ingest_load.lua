-- wrk script for bench/ingest.py: POSTs pre-built request bodies, each one exactly once.
--
-- wrk <opts> -s bench/ingest_load.lua <url> -- <path> <bodies file> <lengths file> \
--     <content type> <X-Sentry-Auth value> <user agent> <wrk thread count> [cycle]
--
-- The bodies file is every (already gzip-compressed) body back to back; the lengths file has
-- one decimal byte count per line. Each wrk thread takes every n-th body (n = thread count),
-- and every request is formatted once, before the clock starts, so a request costs wrk no
-- more than a table lookup. A thread that runs out of bodies stops instead of repeating one
-- (a repeated event id would be dropped as an SDK retry and look like loss); the bench then
-- reports the run as short of bodies. With `cycle`, the bodies are sent round and round
-- instead (for bench/ingest_reference.py, which does not drop repeated event ids).

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("index", thread_count - 1)
   table.insert(threads, thread)
end

local requests = {}
local total = 0
local next_request = 0
local health = nil
local cycle = false
sent = 0
exhausted = 0

function init(args)
   local path, bodies_file, lengths_file = args[1], args[2], args[3]
   local headers = {
      ["Content-Type"] = args[4],
      ["Content-Encoding"] = "gzip",
      ["X-Sentry-Auth"] = args[5],
      ["User-Agent"] = args[6],
   }
   local stride = tonumber(args[7] or "1")
   cycle = args[8] == "cycle"
   local index = tonumber(wrk.thread:get("index") or "0")
   local f = assert(io.open(bodies_file, "rb"))
   local data = f:read("*a")
   f:close()
   local pos = 1
   local n = 0
   for line in io.lines(lengths_file) do
      local length = tonumber(line)
      if n % stride == index then
         total = total + 1
         requests[total] = wrk.format("POST", path, headers, data:sub(pos, pos + length - 1))
      end
      n = n + 1
      pos = pos + length
   end
   data = nil
   health = wrk.format("GET", "/health")
   collectgarbage()
end

function request()
   if next_request >= total and cycle then
      next_request = 0
   end
   if next_request >= total then
      -- Out of bodies: stop this thread; anything asked for meanwhile is a harmless GET.
      if exhausted == 0 then
         exhausted = 1
         wrk.thread:stop()
      end
      return health
   end
   next_request = next_request + 1
   sent = next_request
   return requests[next_request]
end

function done(summary, latency, _)
   local sent_total, exhausted_threads = 0, 0
   for _, thread in ipairs(threads) do
      sent_total = sent_total + (thread:get("sent") or 0)
      exhausted_threads = exhausted_threads + (thread:get("exhausted") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "PT_RESULT duration_us=%d requests=%d bytes=%d err_connect=%d err_read=%d " ..
      "err_write=%d err_status=%d err_timeout=%d p50_us=%d p95_us=%d p99_us=%d " ..
      "max_us=%d mean_us=%.1f sent=%d exhausted=%d\n",
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(95),
      latency:percentile(99), latency.max, latency.mean, sent_total, exhausted_threads))
end
