-- Burns 50 ms of CPU on every pass of its own loop; `busy` after two passes.
local mgr = luna.create_socket_mgr(10)
local spins = 0
function on_loop()
    -- Busy: burn CPU for a while on every pass.
    local until_t = os.clock() + 0.05
    while os.clock() < until_t do end
    spins = spins + 1
    if spins == 2 then print("busy") end
    mgr.wait(0)
end
function on_stop() print("stopped") end
