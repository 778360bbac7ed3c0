-- POST a JSON infer request: env BODY = file holding the request body.
local f = assert(io.open(os.getenv("BODY"), "rb")); local body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d non200=%d errors=%d\n",
    rps, latency:percentile(50), latency:percentile(99), bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
