-- Subscribes to a plain topic and a state topic and prints what arrives.
node.subscribe("news", function(text) print("news " .. tostring(text)) end)
node.subscribe("scores", function(value) print("score " .. tostring(value)) end)
node.subscribe("ticks", function(n) print("tick " .. tostring(n)) end)
when_ready(function()
    luna.sleep(300) -- the subscriptions reach both routers in order after the registrations
    print("subscribed")
end)
