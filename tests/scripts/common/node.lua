-- Helpers of the luna.cluster nodes of the tests, imported (relative to an
-- entry in a sibling folder) as `local nodes = import("../common/node.lua")`.

--- The routers of `luna <script> <id> <router>...`: luna.args[2] onwards.
function routers_from_args()
    local routers = {}
    for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
    return routers
end

--- Calls fn() once `count` routers of `node` are live.
function when_live(node, count, fn)
    local timer
    timer = luna.interval(20, function()
        if #node.live_routers() >= count then
            timer.cancel()
            fn()
        end
    end)
end

--- Prints `status <router> <state>` for every change of node.routers_status()
--- since the states recorded in `states` (updated).
function print_status_changes(node, states)
    for router, state in pairs(node.routers_status()) do
        if states[router] ~= state then
            states[router] = state
            print("status " .. router .. " " .. state)
        end
    end
end

--- Prints `ready <name>` once `count` routers of `node` are live.
function print_ready_when_live(node, count)
    when_live(node, count, function() print("ready " .. node.name) end)
end

--- Runs the file named by CLIENT_BODY in `env` (the environment of a client head).
function run_client_body(env)
    assert(loadfile(assert(os.getenv("CLIENT_BODY"), "CLIENT_BODY is not set"), "t", env))()
end
