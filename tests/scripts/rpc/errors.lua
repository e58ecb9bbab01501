-- A remote error, a missing method, results that cannot be sent, no route, and (once `calling` is
-- printed) a call whose callee the test kills.
when_ready(function()
    print("remote " .. show(node.call_target("2.1", "boom", "bad thing")))
    print("nomethod " .. show(node.call_target("2.1", "nope")))
    print("unsendable " .. show(node.call_target("2.1", "unsendable")))
    local t0 = luna.get_time_ms()
    print("noroute " .. show(node.timeout(20000).call_target("2.9", "echo", 1)) .. " fast=" .. tostring(luna.get_time_ms() - t0 < 5000))
    print("calling")
    t0 = luna.get_time_ms()
    local r, err = node.timeout(20000).call_target("2.2", "sleep", 15000)
    print("lost " .. show(r, err) .. " fast=" .. tostring(luna.get_time_ms() - t0 < 5000))
end)
