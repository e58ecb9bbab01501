-- The handlers of service.lua (tests/rpc.rs edits `version` to test a reload).
function echo(...) return ... end
function types() return 1, 2.5, "text", { list = { 1, 2 }, map = { k = "v" } }, nil, true end
function boom(message) error(message) end
function unsendable() return print end
function sleep(ms)
    print("sleeping " .. ms)
    luna.sleep(ms)
    return "slept " .. ms
end
function version() return "v1 from " .. node.name end
function add(a, b) return a + b end
function chain(depth)
    if depth == 0 then return node.name end
    local rest, err = node.call_master(luna.service_group(node.id) + 1, "chain", depth - 1)
    if not rest then error("chain broke: " .. tostring(err)) end
    return node.name .. ">" .. rest
end
