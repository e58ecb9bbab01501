-- Asks 60 keys through router VIA (1-based) and prints `owner <key> <service>`.
local via = tonumber(os.getenv("VIA") or "1")
node.on_call = function(msg, key, who)
    if msg == "iam" then print("owner " .. tostring(key) .. " " .. who) end
end
when_ready(function()
    local stream = node.links[via].stream
    for key = 0, 59 do stream.forward_hash(2, "key" .. key, "whoami", node.id, key) end
end)
