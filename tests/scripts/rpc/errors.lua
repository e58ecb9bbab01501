-- A remote error, a missing method, results that cannot be sent, no route, and (once `calling` is
-- printed) a call whose callee the test kills.
-- before_timeout: the error came before the 20 s timeout could (a bound on meaning, not on speed).
when_ready(function()
    print("remote " .. show(node.call_target("2.1", "boom", "bad thing")))
    print("nomethod " .. show(node.call_target("2.1", "nope")))
    print("unsendable " .. show(node.call_target("2.1", "unsendable")))
    local t0 = luna.get_time_ms()
    print("noroute " .. show(node.timeout(20000).call_target("2.9", "echo", 1)) .. " before_timeout=" .. tostring(luna.get_time_ms() - t0 < 20000))
    print("calling")
    t0 = luna.get_time_ms()
    local r, err = node.timeout(20000).call_target("2.2", "sleep", 15000)
    print("lost " .. show(r, err) .. " before_timeout=" .. tostring(luna.get_time_ms() - t0 < 20000))
end)
