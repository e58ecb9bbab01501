-- `luna send_buffer_full.lua <port>`: writes 64 KiB messages to a peer that
-- never reads until the 1 MiB send buffer is full.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
local chunk = string.rep("x", 64 * 1024)
local sent = 0
stream.on_connect = function()
    stream.set_send_buffer_size(1024 * 1024)
    local function pump()
        for _ = 1, 8 do
            local n, err = stream.call("data", chunk)
            if not n then print("call refused " .. err .. " after " .. sent) return end
            sent = sent + 1
        end
        luna.timer(1, pump)
    end
    pump()
end
stream.on_error = function(err)
    print("on_error " .. err)
    print("then call says", stream.call("more"))
    luna_quit_flag = true
end
