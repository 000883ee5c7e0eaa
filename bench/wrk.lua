-- The wrk script of `python -m bench` (see bench/load.py):
--   wrk -t T -c C -d D -s wrk.lua http://127.0.0.1:PORT -- REQUEST_FILE T
-- REQUEST_FILE has one directive a line: `method POST`, `header Name: value`, `body {}`, and
-- one or more `path /...`. Requests go round-robin over the paths; each thread starts at its
-- own point of the cycle, so threads rarely ask for the same path at once. Every request is
-- formatted once, in init(). done() prints one line, `BENCH_RESULT {json}`: the summary,
-- latency percentiles in microseconds and the count of each status code.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local method, body, headers, paths = "GET", nil, {}, {}
  for line in io.lines(args[1]) do
    local key, value = line:match("^(%S+) (.*)$")
    if key == "method" then
      method = value
    elseif key == "body" then
      body = value
    elseif key == "header" then
      local name, content = value:match("^([^:]+):%s*(.*)$")
      headers[name] = content
    elseif key == "path" then
      table.insert(paths, value)
    end
  end
  formatted = {}
  for i, path in ipairs(paths) do
    formatted[i] = wrk.format(method, path, headers, body)
  end
  count = #formatted
  cursor = math.floor((id - 1) * count / tonumber(args[2])) % count
  statuses = {}
end

function request()
  cursor = cursor % count + 1
  return formatted[cursor]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local codes = {}
  for status, n in pairs(totals) do
    table.insert(codes, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},'
      .. '"statuses":{%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9),
    table.concat(codes, ",")
  ))
end
