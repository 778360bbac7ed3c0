-- POST a binary-extension infer request: env BODY = file with the JSON header followed by the
-- raw tensor bytes, HEADER_LEN = the JSON header's length in bytes.
local f = assert(io.open(os.getenv("BODY"), "rb")); local body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = os.getenv("HEADER_LEN")

local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d non200=%d errors=%d served=%.1f\n",
    rps, latency:percentile(50), latency:percentile(99), bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    rps * latency.mean / 1e6))
end
