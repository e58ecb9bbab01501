-- mgr.wait inside a callback of the loop is an error; the loop goes on.
local mgr = luna.create_socket_mgr(10)
function on_start()
    luna.timer(1, function()
        local ok, err = pcall(mgr.wait, 10)
        print("nested", ok, err)
        luna_quit_flag = true
    end)
end
