-- Prints every membership event the node hears, and its view on demand.
node.on_member(function(id, up) print("member " .. luna.service_name(id) .. " " .. (up and "up" or "down")) end)
when_ready(function()
    print("watching")
    luna.interval(100, function()
        local names = {}
        for _, id in ipairs(node.members(2)) do names[#names + 1] = luna.service_name(id) end
        local _, via = node.router()
        local line = "view " .. table.concat(names, ",") .. " via " .. tostring(via)
        if line ~= last_view then
            last_view = line
            print(line)
        end
    end)
end)
