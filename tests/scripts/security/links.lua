-- A client of tests/security.rs: one connection per script argument NAME to
-- NAME_HOST (default 127.0.0.1):NAME_PORT with the options of
-- common.link_options(NAME) (NAME_SECRET, NAME_CA, NAME_CERT, NAME_KEY,
-- NAME_SERVER_NAME, NAME_HANDSHAKE_MS).
-- Prints `connect NAME <result> <detail>` (also when mgr.connect itself
-- refuses the options); on "ok" sends ("ping", n) every 100 ms and prints
-- `reply NAME <n>` per answer; `error NAME <err> <detail>` when the link fails later.
-- Also the `stats ...` lines of common.print_stats.
local common = import("common.lua")

mgr = luna.create_socket_mgr(64)
links = {}
common.print_stats(mgr)

local function open(name)
    local host = common.env(name .. "_HOST", "127.0.0.1")
    local port = common.num(name .. "_PORT")
    local stream, err, detail = mgr.connect(host, port, 5000, common.link_options(name))
    if not stream then
        print("connect " .. name .. " " .. tostring(err) .. " " .. tostring(detail))
        return
    end
    links[name] = stream
    local sent = 0
    stream.on_connect = function(result, why)
        print("connect " .. name .. " " .. tostring(result) .. " " .. tostring(why))
        if result ~= "ok" then return end
        stream.timer = luna.interval(100, function()
            sent = sent + 1
            stream.call("ping", sent)
        end)
    end
    stream.on_call = function(msg, _, _, n)
        if msg == "reply" then print("reply " .. name .. " " .. tostring(n)) end
    end
    stream.on_error = function(err, detail)
        print("error " .. name .. " " .. tostring(err) .. " " .. tostring(detail))
        if stream.timer then stream.timer.cancel() end
    end
end

for _, name in ipairs(luna.args) do open(name) end
