-- luna.lease: the master leases of luna.discovery (`d.lease`), at most one
-- holder at a time. Used by luna.discovery; not a public module of its own.
-- docs/discovery.md explains the rules and the clock assumption:
--
--   acquire: SET key id NX PX ttl
--   renew (every ttl/3): a script that runs PEXPIRE if the key is still
--     ours, writes it again if Redis lost it, and answers 0 if another
--     process holds it (we demote at once)
--   release (graceful stop): a script that deletes the key only if ours
--
-- The holder demotes itself by its own timer at (time the last successful
-- acquire or renew was sent) + ttl - margin, before Redis can expire the
-- key, even when Redis does not answer. After a reconnect a non-holder
-- waits a full TTL before contesting (a restarted Redis may have lost the
-- key while its holder still holds the lease).
--
-- Every function takes the discovery that owns the lease (`owner`): its
-- `commands` (a luna.redis client), `ttl_ms`, `stopped`, `reconnected_at`
-- (ms of the last reconnect, nil before one) and `report(what)` (a command
-- callback that logs failures).
local luna = luna
local log = luna.log

local M = {}

-- Renews if the caller holds the lease, writes it again if Redis lost it
-- (restarted empty); 0 when another holds it.
local RENEW = [[
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
if not holder then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) return 1 end
return 0]]
-- Releases only if the caller still holds the lease.
local RELEASE = [[if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end]]

-- We no longer hold the lease (if we did): tells on_demote why.
local function demote(lease, why)
    if lease.demote_timer then lease.demote_timer.cancel() end
    lease.demote_timer = nil
    if not lease.held then return end
    lease.held = false
    log.warn("discovery: " .. lease.id .. " lost the lease " .. lease.key .. " (" .. why .. ")")
    if lease.on_demote then lease.on_demote(why) end
end

-- The lease is ours until `sent_at + ttl - margin` (sent_at: when the
-- command that set or renewed it was sent): a timer demotes us then.
local function hold_until(lease, sent_at)
    lease.deadline = sent_at + lease.ttl_ms - lease.margin_ms
    if lease.demote_timer then lease.demote_timer.cancel() end
    lease.demote_timer = luna.timer(math.max(0, lease.deadline - luna.get_time_ms()), function()
        lease.demote_timer = nil
        demote(lease, "not renewed in time")
    end)
end

-- We hold the lease now (acquired by a command sent at sent_at).
local function promote(lease, sent_at)
    lease.held = true
    hold_until(lease, sent_at)
    log.info("discovery: " .. lease.id .. " holds the lease " .. lease.key)
    if lease.on_promote then lease.on_promote() end
end

-- Deletes the key in Redis if it is still ours.
local function release_key(owner, lease)
    owner.commands.send(owner.report("release " .. lease.key), "EVAL", RELEASE, 1, lease.key, lease.id)
end

-- True within a TTL of a reconnect, when a non-holder must not contest yet.
local function waiting_after_reconnect(owner, lease)
    local at = owner.reconnected_at
    return at ~= nil and luna.get_time_ms() < at + lease.ttl_ms
end

-- The answer to SET NX (sent at sent_at): promoted if it set the key with
-- time left; nil without an error is a key another holds.
local function acquired(owner, lease, sent_at, reply, err)
    if reply ~= "OK" then
        if err then owner.report("acquire " .. lease.key)(nil, err) end
        return
    end
    -- Stopped while the command was on its way: give the key back at once.
    if lease.released then return release_key(owner, lease) end
    if not lease.held and sent_at + lease.ttl_ms - lease.margin_ms > luna.get_time_ms() then
        promote(lease, sent_at)
    end
end

--- Tries to acquire the lease (SET NX), unless it is held, released, or a
--- reconnect was less than a TTL ago (the renew tick tries again).
function M.try_acquire(owner, lease)
    if lease.held or owner.stopped or lease.released then return end
    if waiting_after_reconnect(owner, lease) then return end
    local sent_at = luna.get_time_ms()
    owner.commands.send(function(reply, err) acquired(owner, lease, sent_at, reply, err) end,
        "SET", lease.key, lease.id, "NX", "PX", lease.ttl_ms)
end

-- The answer to the renew script (sent at sent_at): 1 renewed, 0 held by
-- another; anything else is logged (the demote timer still runs).
local function renewed(owner, lease, sent_at, reply, err)
    if not lease.held then return end
    if reply == 1 then
        hold_until(lease, sent_at)
    elseif reply == 0 then
        demote(lease, "held by another")
    else
        owner.report("renew " .. lease.key)(nil, err or ("unexpected reply " .. tostring(reply)))
    end
end

--- Renews the lease when held (the script checks it is still ours), else
--- tries to acquire it.
function M.renew(owner, lease)
    if not lease.held then return M.try_acquire(owner, lease) end
    local sent_at = luna.get_time_ms()
    owner.commands.send(function(reply, err) renewed(owner, lease, sent_at, reply, err) end,
        "EVAL", RENEW, 1, lease.key, lease.id, lease.ttl_ms)
end

--- A lease of Redis key `key` for `id`, renewed (or contested) every ttl/3
--- from now on; it does not contest before M.try_acquire.
--- options: ttl_ms (default the owner's), margin_ms, on_promote(), on_demote(reason).
function M.new(owner, key, id, options)
    local ttl_ms = options.ttl_ms or owner.ttl_ms
    local lease = {
        key = key, id = tostring(id), held = false,
        ttl_ms = ttl_ms, margin_ms = options.margin_ms or math.max(ttl_ms // 10, 20),
        on_promote = options.on_promote, on_demote = options.on_demote,
    }
    function lease.is_held()
        return lease.held and luna.get_time_ms() < lease.deadline
    end
    lease.timer = luna.interval(math.max(20, lease.ttl_ms // 3), function() M.renew(owner, lease) end)
    return lease
end

--- Stops renewing the lease; a held one is released in Redis and demoted
--- ("released") so that a backup takes over at once.
function M.release(owner, lease)
    lease.timer.cancel()
    lease.released = true
    if lease.held then
        release_key(owner, lease)
        demote(lease, "released")
    end
end

return M
