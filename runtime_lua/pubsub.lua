-- luna.pubsub: publish/subscribe for luna.cluster nodes (not a public module
-- of its own; the node's functions are documented in luna.cluster).
--
-- A node subscribes on every router it is linked to (and again after every
-- reconnect); the routers keep the subscription tables and fan a published
-- message out without decoding it. A plain publish goes through the one
-- router the node sends through, so each subscriber hears it once. A state
-- (publish_state) goes to every router, which keeps it for later
-- subscribers; it carries (publisher, sequence) so that the copies a
-- subscriber gets from several routers, or an older state retained by a
-- router the publisher no longer uses, are dropped.
--
-- Wire: a node sends ("@subscribe", topic) / ("@unsubscribe", topic) to a
-- router; the router may answer ("@subscribe_failed", topic, err). Publish
-- frames carry ("@pub", topic, ...) or ("@state", topic, publisher, seq, ...).
local luna = luna
local log = luna.log

local M = {}

-- The handlers below take the router's message as cluster passes it:
-- (node, link, stream, ...), so that a message goes to them directly.

-- Runs a subscriber's function on a message of its topic (one for a topic
-- no longer heard, still on its way after unsubscribe, is logged at debug).
local function deliver(node, _, _, topic, ...)
    local fn = node.subscriptions[topic]
    if fn then return luna.go(fn, ...) end
    log.debug(node.name .. ": dropped a message of " .. tostring(topic) .. ", a topic not subscribed to")
end

-- A state: dropped unless newer than the last one seen from that publisher.
local function deliver_state(node, _, _, topic, publisher, seq, ...)
    local seen = node.states_seen[topic]
    if not seen then
        seen = {}
        node.states_seen[topic] = seen
    end
    if (seen[publisher] or -1) >= seq then return end
    seen[publisher] = seq
    deliver(node, nil, nil, topic, ...)
end

--- The router's pub/sub messages, by name: handler(node, link, stream, ...).
M.messages = {
    ["@pub"] = deliver,
    ["@state"] = deliver_state,
    ["@subscribe_failed"] = function(node, _, _, topic, err)
        log.warn(node.name .. ": a router refused the subscription to " .. tostring(topic) .. ": " .. tostring(err))
    end,
}

--- A link came up: it gets every subscription again.
function M.link_up(node, link)
    for topic in pairs(node.subscriptions) do link.stream.call("@subscribe", topic) end
end

-- Calls fn(stream) for every router link that can take control messages now.
local function each_link(node, fn)
    for _, link in ipairs(node.links) do
        if link.stream and link.state ~= "connecting" then fn(link.stream) end
    end
end

--- Adds the pub/sub API to a node.
function M.install(node)
    node.subscriptions = {}
    node.states_seen = {}
    node.state_seq = 0

    --- Calls fn(...) (in a coroutine) for every message published on
    --- `topic`; a retained state comes first. Kept across router switches.
    function node.subscribe(topic, fn)
        if type(topic) ~= "string" or #topic == 0 or #topic > 255 then
            error("node.subscribe: the topic must be a string of 1 to 255 bytes", 2)
        end
        local new = node.subscriptions[topic] == nil
        node.subscriptions[topic] = fn
        if new then each_link(node, function(stream) stream.call("@subscribe", topic) end) end
    end

    --- Stops hearing `topic`.
    function node.unsubscribe(topic)
        if node.subscriptions[topic] == nil then return end
        node.subscriptions[topic] = nil
        node.states_seen[topic] = nil
        each_link(node, function(stream) stream.call("@unsubscribe", topic) end)
    end

    --- Sends msg, ... to every subscriber of `topic` (through the router in
    --- use). A topic nobody hears is counted by the router, not an error.
    --- Returns the bytes queued, or nil, err.
    function node.publish(topic, ...)
        local stream = node.router()
        if not stream then return nil, "no-route" end
        return stream.publish(topic, false, "@pub", topic, ...)
    end

    --- Publishes a state: every router keeps the latest for subscribers
    --- that come later. Returns how many routers took it, or nil, err.
    function node.publish_state(topic, ...)
        node.state_seq = node.state_seq + 1
        local sent, err = 0, "no-route"
        for _, stream in ipairs(node.live_routers()) do
            local ok, why = stream.publish(topic, true, "@state", topic, node.id, node.state_seq, ...)
            if ok then sent = sent + 1 else err = why end
        end
        if sent == 0 then return nil, err end
        return sent
    end
end

return M
