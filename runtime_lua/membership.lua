-- luna.membership: what a luna.cluster node knows of the ids live on its
-- router, and waiting for a route to appear. Used by luna.cluster; not a
-- public module of its own.
--
-- Each router link that watches (after the first node.on_member,
-- node.members or node.wait_for_route) gets the router's full list
-- (`@members`), then every change (`@member id up`). The node's view is the
-- view of the router it sends through; when it switches routers, the view
-- is re-synced by difference, so listeners hear each real change once.
local luna = luna
local log = luna.log
local running, yield = coroutine.running, coroutine.yield

local M = {}

--- Most one-way messages a node holds while waiting for their route.
M.max_waiting_forwards = 10000

local group_of = luna.service_group

local route_appeared

-- Calls the node's listeners and wakes what waits for a route.
local function changed(node, id, up)
    local counts = node.group_counts
    local group = group_of(id)
    counts[group] = (counts[group] or 0) + (up and 1 or -1)
    for _, listener in ipairs(node.member_listeners) do
        local ok, err = xpcall(listener, debug.traceback, id, up)
        if not ok then log.error(node.name .. ": error in on_member: " .. err) end
    end
    if up then route_appeared(node) end
end

-- Every id of `from` that `other` lacks comes (up) or goes in the node's view.
local function apply_difference(node, from, other, up)
    local view = node.view
    for id in pairs(from) do
        if not other[id] then
            view[id] = up or nil
            changed(node, id, up)
        end
    end
end

--- Brings the node's view in line with the router it sends through.
function M.sync(node)
    local current = node.current
    local known = current and current.members
    if not known then return end
    apply_difference(node, node.view, known, false)
    apply_difference(node, known, node.view, true)
end

--- Starts watching membership on every router link (once).
function M.watch(node)
    if node.watching then return end
    node.watching = true
    for _, link in ipairs(node.links) do
        if link.stream and link.state ~= "connecting" then link.stream.call("@watch_members") end
    end
end

--- A link came up: it watches too if the node does.
function M.link_up(node, link)
    link.members = nil
    if node.watching then link.stream.call("@watch_members") end
end

--- The router's membership messages, by name: handler(node, link, stream, ...).
M.messages = {
    -- The full list, the answer to `@watch_members`.
    ["@members"] = function(node, link, _, ids)
        local set = {}
        for _, id in ipairs(ids or {}) do set[id] = true end
        link.members = set
        if link == node.current then M.sync(node) end
    end,
    -- One change: the view of the router in use takes just this id (it is
    -- in line with that router's list since the last sync).
    ["@member"] = function(node, link, _, id, up)
        local members = link.members
        if not members then return end
        up = up and true or nil
        members[id] = up
        if link == node.current and node.view[id] ~= up then
            node.view[id] = up
            changed(node, id, up == true)
        end
    end,
}

--- True when the view has somewhere to send `mode`/`target`.
function M.has_route(node, mode, target)
    if mode == "target" then
        if type(target) == "string" then target = luna.service_id(target) end
        return node.view[target] == true
    end
    return (node.group_counts[target] or 0) > 0
end

-- Coroutines and messages waiting for a route: { co = , mode = , target = } or
-- { send = function, mode = , target = , fail = function }.
local function waiters(node)
    node.route_waiters = node.route_waiters or {}
    return node.route_waiters
end

-- Wakes the calls and sends the messages whose route is now in the view.
function route_appeared(node)
    local list = node.route_waiters
    if not list or #list == 0 then return end
    local still = {}
    local ready = {}
    for _, waiter in ipairs(list) do
        if M.has_route(node, waiter.mode, waiter.target) then
            ready[#ready + 1] = waiter
        else
            still[#still + 1] = waiter
        end
    end
    node.route_waiters = still
    for _, waiter in ipairs(ready) do
        waiter.done = true
        if waiter.timer then waiter.timer.cancel() end
        if waiter.co then
            luna.resume(waiter.co, true)
        else
            waiter.send()
        end
    end
end

local function remove(node, waiter)
    local list = waiters(node)
    for at, other in ipairs(list) do
        if other == waiter then
            table.remove(list, at)
            return
        end
    end
end

-- Gives up on a waiter `ms` from now (unless done by then): it is removed, then on_timeout().
local function expire_after(node, waiter, ms, on_timeout)
    waiter.timer = luna.timer(ms, function()
        if waiter.done then return end
        waiter.done = true
        remove(node, waiter)
        on_timeout()
    end)
end

--- In a coroutine: waits up to `ms` until the view has a route; true if it has.
function M.wait_for_route(node, mode, target, ms)
    if M.has_route(node, mode, target) then return true end
    local co, is_main = running()
    if is_main then return false end
    local waiter = { co = co, mode = mode, target = target }
    expire_after(node, waiter, ms, function() luna.resume(co, false) end)
    local list = waiters(node)
    list[#list + 1] = waiter
    return yield()
end

--- Holds a one-way message until its route appears (`send()`), or `ms`
--- passed (`fail()`); false when too many are held already.
function M.hold(node, mode, target, ms, send, fail)
    local list = waiters(node)
    if #list >= M.max_waiting_forwards then return false end
    local waiter = { mode = mode, target = target, send = send }
    expire_after(node, waiter, ms, fail)
    list[#list + 1] = waiter
    return true
end

--- Adds the membership API to a node.
function M.install(node)
    node.view = {}
    node.group_counts = {}
    node.member_listeners = {}

    --- Sorted ids live on the router in use (all groups when `group` is nil).
    function node.members(group)
        M.watch(node)
        local list = {}
        for id in pairs(node.view) do
            if group == nil or group_of(id) == group then list[#list + 1] = id end
        end
        table.sort(list)
        return list
    end

    --- True while `id` is registered on the router in use.
    function node.is_active(id)
        M.watch(node)
        if type(id) == "string" then id = luna.service_id(id) end
        return node.view[id] == true
    end

    --- Calls fn(id, up) whenever an id registers (up) or goes away on the
    --- router in use; every id already there is announced as up first.
    function node.on_member(fn)
        node.member_listeners[#node.member_listeners + 1] = fn
        M.watch(node)
    end

    --- Calls and forwards whose target has no route wait up to `ms` for it
    --- (0: fail at once with no-route, the default).
    function node.wait_for_route(ms)
        node.route_wait_ms = (ms and ms > 0) and ms or nil
        if node.route_wait_ms then M.watch(node) end
    end
end

return M
