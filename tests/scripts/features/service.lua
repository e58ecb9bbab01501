-- A service of tests/cluster_features.rs: `luna service.lua <id> <router>...`.
-- Prints `ready <id>` once registered on every router.
local cluster = require("luna.cluster")
local nodes = import("../common/node.lua")
local routers = nodes.routers_from_args()

handlers = handlers or {}

-- Logs its trace id and passes the request on to the next id of `path`.
function handlers.hop(path, at)
    at = at or 1
    luna.log.info("hop " .. at .. " at " .. node.name)
    local next_id = path[at + 1]
    if not next_id then return luna.trace_id() end
    return node.call_target(next_id, "hop", path, at + 1)
end

function handlers.echo(value) return value, node.name end

-- One-way: prints the trace id it runs under and passes the note on to
-- the next id of `path` (a forward made here carries the same id).
function handlers.trace_note(path, at)
    at = at or 1
    print("trace_note " .. node.name .. " " .. tostring(luna.trace_id()))
    local next_id = path[at + 1]
    if next_id then node.forward_target(next_id, "trace_note", path, at + 1) end
end

-- One-way: prints what arrived.
function handlers.note(text) print("note " .. node.name .. " " .. tostring(text)) end

node = node or cluster.start{ id = luna.args[1], routers = routers, heartbeat_ms = 100, handlers = handlers }
nodes.print_ready_when_live(node, #routers)

-- One-way: tells `reply_to` which service this key landed on.
function handlers.whoami(reply_to, key) node.forward_target(reply_to, "iam", key, node.name) end
