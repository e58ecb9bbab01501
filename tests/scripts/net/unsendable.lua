-- `luna unsendable.lua <port>`: values that cannot be sent are refused with
-- what and where (`refused` lines) and queue nothing.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
stream.on_connect = function()
    local cyclic = {}; cyclic.self = cyclic
    local deep = {}; local t = deep
    for _ = 1, 40 do t.next = {}; t = t.next end
    local cases = {
        { "f", print },
        { "t", { items = { 1, 2, { bad = coroutine.create(print) } } } },
        { "c", cyclic },
        { "d", deep },
        { "u", io.stdout },
    }
    for _, case in ipairs(cases) do
        local n, err = stream.call(table.unpack(case))
        print("refused", n, err)
    end
    -- Nothing was queued: the next message is the first the server sees.
    stream.call("after")
end
stream.on_call = function(kind, msg)
    print("first reply " .. msg)
    luna_quit_flag = true
end
