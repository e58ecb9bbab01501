-- Subscribes to a plain topic and a state topic and prints what arrives.
node.subscribe("news", function(text) print("news " .. tostring(text)) end)
node.subscribe("scores", function(value) print("score " .. tostring(value)) end)
node.subscribe("ticks", function(n) print("tick " .. tostring(n)) end)
-- tests/cluster_features.rs waits until both routers count the three topics.
when_ready(function() print("subscribed") end)
