-- The Lua memory that 200,000 finished calls leave behind, after 20,000 as
-- a baseline: `growth_kb <n> pending <n>`.
local function batch(calls)
    local done = 0
    local me = coroutine.running()
    -- The same 200 callers in both batches: only the number of calls differs.
    for i = 1, 200 do
        luna.go(function()
            for j = 1, calls // 200 do assert(node.call_target("2.1", "add", i, j) == i + j) end
            done = done + 1
            if done == 200 then luna.resume(me) end
        end)
    end
    coroutine.yield()
end
local function lua_kb()
    collectgarbage(); collectgarbage()
    return collectgarbage("count")
end
when_ready(function()
    batch(20000)
    local before = lua_kb()
    batch(200000)
    local after = lua_kb()
    print("growth_kb " .. math.floor(after - before) .. " pending " .. rpc.stats().pending)
end)
