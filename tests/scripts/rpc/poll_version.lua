-- Asks 2.1 for its handlers' version every 50 ms: `answer <version>`.
when_ready(function()
    while true do
        print("answer " .. show(node.call_target("2.1", "version")))
        luna.sleep(50)
    end
end)
