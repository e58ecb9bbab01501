-- Match service: two instances; routers send master traffic to the first
-- live one in id order, so 3.2 takes over when 3.1 dies. With discovery,
-- the holder of a Redis lease is the master instead.
--   luna examples/cluster/match.lua 3.1
local config = import("config.lua")

queue = queue or {}
matches = matches or 0

handlers = handlers or {} -- the same table across reloads: the node looks handlers up in it

-- RPC: joins the queue; every two players make a match.
function handlers.join(player)
    queue[#queue + 1] = player
    if #queue < 2 then
        return "waiting", node.name
    end
    matches = matches + 1
    local pair = table.concat(queue, " vs ")
    queue = {}
    return "match " .. matches .. ": " .. pair, node.name
end

node = node or config.start_node(luna.args[1], handlers)
if config.discovery and not lease then
    lease = config.discovery.master_lease(node, {
        on_promote = function() luna.log.info(node.name .. " is the match master") end,
    })
end
