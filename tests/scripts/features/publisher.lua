-- Publishes three news, two states, one message nobody hears, then a tick
-- every 100 ms.
when_ready(function()
    for i = 1, 3 do node.publish("news", "item " .. i) end
    node.publish_state("scores", "v1")
    node.publish_state("scores", "v2")
    node.publish("nobody-listens", 1)
    print("published")
    local n = 0
    luna.interval(100, function()
        n = n + 1
        node.publish("ticks", n)
    end)
end)
