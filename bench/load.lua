-- wrk script for bench/load-wrk: what each request is (LOAD_MODE) and the summary it prints.
--   LOAD_MODE=health       GET as given on the command line (GET /health)
--   LOAD_MODE=completions  POST /v1/completions, LOAD_MAX_TOKENS tokens (default 8) from
--                          LOAD_MODEL at temperature 0; each request's prompt differs in its
--                          number, so requests share a prefix but never repeat exactly.
-- The summary is one block per run: requests/s, latency percentiles and every kind of error
-- wrk counts (connect, read, write, timeout, and HTTP status >= 400 as "non-2xx").
local mode = os.getenv("LOAD_MODE") or "health"
local counter = 0

if mode == "completions" then
  local model = os.getenv("LOAD_MODEL") or "SmolLM2-135M-Instruct.Q4_1"
  local max_tokens = tonumber(os.getenv("LOAD_MAX_TOKENS") or "8")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    counter = counter + 1
    local body = string.format(
      '{"model": "%s", "prompt": "Note %d. The capital of France is", "max_tokens": %d, ' ..
      '"temperature": 0}', model, counter, max_tokens)
    return wrk.format(nil, "/v1/completions", nil, body)
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("%-11s %8d requests in %.1f s = %9.1f req/s\n", mode, summary.requests,
                         seconds, summary.requests / seconds))
  io.write(string.format("%-11s latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", mode,
                         latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                         latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("%-11s errors: connect %d, read %d, write %d, timeout %d, non-2xx %d\n",
                         mode, e.connect, e.read, e.write, e.timeout, e.status))
end
