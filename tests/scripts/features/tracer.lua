-- Starts a traced request, then a traced one-way note, that pass through 3.1, 4.1 and 5.1.
local rpc = require("luna.rpc")
rpc.tracing = true
when_ready(function()
    local trace, err = node.call_target("3.1", "hop", { "3.1", "4.1", "5.1" })
    print("trace " .. tostring(trace) .. " " .. tostring(err))
    -- A one-way message starts a trace of its own, passed on by each hop's forward.
    node.forward_target("3.1", "trace_note", { "3.1", "4.1", "5.1" })
end)
