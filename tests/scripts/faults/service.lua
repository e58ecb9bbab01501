-- A service of the fault-injection tests (tests/faults.rs).
--   ID=2.1 ROUTERS=ip:port,... [REDIS_PORT=..] [TAG=name] [SLOW_MS=30] [LIVE=1] luna service.lua
-- Handlers: whoami() -> TAG; slow() -> TAG after SLOW_MS; sleep(ms) prints
-- `sleeping <ms>` and answers TAG after ms; echo(...) -> ...; the one-way
-- fwd() counts, printed as `got <count>`. Prints `ready <id>` once LIVE
-- routers are live, and the lines of common.watch.
local common = import("common.lua")

local id = common.env("ID", "2.1")
local tag = common.env("TAG", id)
got = got or 0

local handlers = {}
function handlers.whoami() return tag end
function handlers.slow()
    luna.sleep(common.num("SLOW_MS", 30))
    return tag
end
function handlers.sleep(ms)
    print("sleeping " .. tostring(ms))
    luna.sleep(ms)
    return tag
end
function handlers.echo(...) return ... end
function handlers.fwd() got = got + 1 end

node = common.start_node{ id = id, handlers = handlers }
common.watch(node, function() print("ready " .. id) end)
common.collect_garbage_often()

local shown = 0
luna.interval(50, function()
    if got ~= shown then
        shown = got
        print("got " .. got)
    end
end)
