-- luna-bench: how late call timeouts fire (W5.timeout). args: count.
-- A stream to a server that never answers; `count` calls with a 20 ms
-- timeout one after the other, then `count` luna.sleep(20) as the baseline.
-- Prints "late <median call µs> <median sleep µs>" and quits.
local rpc = require("luna.rpc")
local count = assert(math.tointeger(tonumber(luna.args[1])), "count")
local TIMEOUT_MS = 20

local function median(values)
    table.sort(values)
    return values[(#values + 1) // 2]
end

-- Microseconds past the deadline of `count` runs of fn.
local function lateness(fn)
    local late = {}
    for i = 1, count do
        local t0 = luna.get_time_ns()
        fn()
        late[i] = (luna.get_time_ns() - t0) / 1000 - TIMEOUT_MS * 1000
    end
    return median(late)
end

function on_start()
    local mgr = luna.create_socket_mgr(4)
    local listener = mgr.listen("127.0.0.1", 0)
    listener.on_accept = function(stream) stream.on_call = function() end end -- never answers
    local stream = mgr.connect("127.0.0.1", listener.port, 1000)
    stream.on_connect = function()
        luna.go(function()
            local call_late = lateness(function()
                local ok, err = rpc.timeout(TIMEOUT_MS).call(stream, "never")
                assert(ok == nil and err == "timeout", tostring(err))
            end)
            local sleep_late = lateness(function() luna.sleep(TIMEOUT_MS) end)
            print(string.format("late %.0f %.0f", call_late, sleep_late))
            luna_quit_flag = true
        end)
    end
end
