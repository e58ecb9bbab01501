-- Asks the master of group 3 who it is every 50 ms: `master <n> <service>`.
on_reply = function(msg, tag, who) if msg == "iam" then print("master " .. tag .. " " .. who) end end
local n = 0
when_ready(function()
    luna.interval(50, function()
        n = n + 1
        node.forward_master(3, "whoami", node.id, n)
    end)
end)
