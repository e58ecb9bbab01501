-- A call that times out; the late reply must not answer the next call.
when_ready(function()
    local t0 = luna.get_time_ms()
    local r, err = node.timeout(100).call_target("2.1", "sleep", 400)
    print("first " .. show(r, err, luna.get_time_ms() - t0 < 350))
    -- The next call gets its own answer, never the late one.
    print("second " .. show(node.call_target("2.1", "echo", "fresh")))
    -- The late reply arrives once the handler's 400 ms are over.
    while rpc.stats().late_replies == 0 do luna.sleep(10) end
    print("late " .. rpc.stats().late_replies .. " pending " .. rpc.stats().pending)
end)
