-- 10,000 concurrent calls spread by hash over group 2, each result checked.
when_ready(function()
    local done, wrong = 0, 0
    for i = 1, 10000 do
        luna.go(function()
            local sum, err = node.call_hash(2, i, "add", i, 1)
            if sum ~= i + 1 then wrong = wrong + 1; print("bad", i, sum, err) end
            done = done + 1
            if done == 10000 then
                print("done " .. done .. " wrong " .. wrong .. " pending " .. rpc.stats().pending)
            end
        end)
    end
end)
