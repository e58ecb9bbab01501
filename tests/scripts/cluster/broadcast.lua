-- 10 broadcasts and 200 random forwards to group 4, then one last
-- broadcast `end`: once a service has it, everything before it has arrived.
when_ready(function()
    for i = 1, 10 do node.forward_broadcast(4, "count", "bc") end
    for i = 1, 200 do node.forward_random(4, "count", "rnd") end
    node.forward_broadcast(4, "count", "end")
    print("sent")
end)
