-- Asks every key through router VIA (1-based, default 1) and prints
-- `owner <key> <service>` lines.
local keys = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "alice", "bob", "carol", "dave", "erin", "frank" }
local via = tonumber(os.getenv("VIA") or "1")
on_reply = function(msg, tag, who)
    if msg == "iam" then print("owner " .. tostring(tag) .. " " .. who) end
end
when_ready(function()
    local stream = node.links[via].stream
    for _, key in ipairs(keys) do stream.forward_hash(2, key, "whoami", node.id, key) end
end)
