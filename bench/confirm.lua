-- wrk script of bench/http_confirm.py: POST to one message after another, each wrk thread
-- taking every n-th id of the file so no two threads confirm the same message.
-- Arguments: ids file, path template with {id}, Authorization header value (or "-").
local counter = 0
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

function init(args)
  ids = {}
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  template = args[2]
  stride = tonumber(args[4])
  position = offset
  wrk.method = "POST"
  wrk.body = "{}"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] ~= "-" then wrk.headers["Authorization"] = args[3] end
end

function request()
  local id = ids[(position % #ids) + 1]
  position = position + stride
  return wrk.format(nil, (template:gsub("{id}", id)))
end
