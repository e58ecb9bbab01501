-- A call to every instance of group 4: `result <id> <ok> <value or error>`.
when_ready(function()
    local results, err = node.call_broadcast(4, "version")
    local ids = {}
    for id in pairs(results) do ids[#ids + 1] = id end
    table.sort(ids)
    for _, id in ipairs(ids) do
        local r = results[id]
        print("result " .. luna.service_name(id) .. " " .. tostring(r.ok) .. " " .. tostring(r.ok and r[1] or r.err))
    end
    print("count " .. #ids)
end)
