-- Subscribes to the state topic after its states were published.
node.subscribe("scores", function(value) print("late score " .. tostring(value)) end)
