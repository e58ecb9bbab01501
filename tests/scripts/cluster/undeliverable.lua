-- Forwards in every mode to nobody (`forward_error` lines), then one to itself.
when_ready(function()
    node.forward_target("2.7", "lost", 1)
    node.forward_master(5, "lost", 2)
    node.forward_hash(6, "key", "lost", 3)
    node.forward_random(7, "lost", 4)
    node.forward_broadcast(8, "lost", 5)
    node.forward_target(node.id, "to myself")
end)
on_reply = function(msg) print("delivered " .. msg) end
