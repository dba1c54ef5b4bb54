-- wrk script of bench/webhooks.py: POST pre-signed webhook requests, one after another, each wrk
-- thread (one connection each) taking every n-th line of the file and stopping after its last
-- answer, so every request is sent exactly once.
-- wrk itself waits out its -d duration and divides by it, so the script times the requests
-- (first request to last answer, over all threads) and prints "Elapsed:".
-- Arguments: requests file (lines "path<TAB>signature<TAB>body"), number of threads,
-- Content-Type, name of the per-line signature header (or "-"), Authorization value (or "-").
local counter = 0
local threads = {}
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  threads[#threads + 1] = thread
end

-- Wall clock in seconds with nanoseconds (Lua's os.time counts whole seconds); read twice per
-- thread only.
local function now()
  local pipe = io.popen("date +%s.%N")
  local value = tonumber(pipe:read("*l"))
  pipe:close()
  return value
end

function init(args)
  local stride = tonumber(args[2])
  lines = {}
  local index = 0
  for line in io.lines(args[1]) do
    if index % stride == offset then
      local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      lines[#lines + 1] = {path, signature, body}
    end
    index = index + 1
  end
  signature_header = args[4]
  base_headers = {["Content-Type"] = args[3]}
  if args[5] ~= "-" then base_headers["Authorization"] = args[5] end
  answered = 0
end

-- The line to send is the first unanswered one: wrk calls request() once more than it sends
-- (in the first thread, before it starts), so counting calls would skip a line.
function request()
  if started == nil then started = now() end
  local item = lines[answered + 1] or lines[#lines]
  -- wrk.format takes these headers instead of wrk.headers, not besides them.
  local headers = {}
  for name, value in pairs(base_headers) do headers[name] = value end
  if signature_header ~= "-" then headers[signature_header] = item[2] end
  return wrk.format("POST", item[1], headers, item[3])
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= #lines then
    finished = now()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local first, last = nil, nil
  for _, thread in ipairs(threads) do
    local started, finished = thread:get("started"), thread:get("finished")
    if started and (first == nil or started < first) then first = started end
    if finished == nil then last = nil; break end
    if last == nil or finished > last then last = finished end
  end
  if first and last then io.write(string.format("Elapsed: %.6f\n", last - first)) end
end
