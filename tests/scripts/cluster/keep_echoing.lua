-- Prints `ready`, then asks 2.1 for an echo every 20 ms (`reply <n>`).
local n = 0
on_reply = function(msg, tag, who) print("reply " .. tag) end
when_ready(function()
    print("ready")
    luna.interval(20, function() n = n + 1; node.forward_target("2.1", "echo", node.id, n) end)
end)
