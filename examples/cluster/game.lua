-- Game service: any instance can take a player (random), all of them hear
-- announcements (broadcast). login asks the mail service over RPC.
--   luna examples/cluster/game.lua 4.1
local config = import("config.lua")

handlers = handlers or {} -- the same table across reloads: the node looks handlers up in it

-- RPC: logs a player in and tells how many unread mails wait for them.
function handlers.login(account)
    local unread, err = node.call_hash(config.MAIL, account, "unread", account)
    if not unread then
        error("mail service unavailable: " .. err)
    end
    return "welcome " .. account .. " to " .. node.name, unread
end

-- One-way, broadcast: node.forward_broadcast(GAME, "announce", text)
function handlers.announce(text)
    print(node.name .. " announcement: " .. text)
end

node = node or config.start_node(luna.args[1], handlers)
