-- Starts a traced request that passes through 3.1, 4.1 and 5.1.
local rpc = require("luna.rpc")
rpc.tracing = true
when_ready(function()
    local trace, err = node.call_target("3.1", "hop", { "3.1", "4.1", "5.1" })
    print("trace " .. tostring(trace) .. " " .. tostring(err))
end)
