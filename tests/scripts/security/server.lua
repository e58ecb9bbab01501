-- A server of tests/security.rs: one listener per script argument NAME, on
-- 127.0.0.1 (NAME_HOST to change it) with the options of common.link_options(NAME)
-- (NAME_SECRET, NAME_CERT, NAME_KEY, NAME_CA, NAME_REQUIRE_CLIENT_CERT=1,
-- NAME_HANDSHAKE_MS).
-- Prints `port NAME <port>` per listener (or `listen NAME <err> <detail>`),
-- `accepted NAME <ip>:<port>` per secured link, `closed NAME <err>` when one
-- goes, and the `stats ...` lines of common.print_stats. Answers every message
-- `msg, ...` with `"reply", NAME, msg, ...`.
local common = import("common.lua")

mgr = luna.create_socket_mgr(256)
listeners = {}
common.print_stats(mgr)

for _, name in ipairs(luna.args) do
    local listener, err, detail = mgr.listen(common.env(name .. "_HOST", "127.0.0.1"), 0, common.link_options(name))
    if not listener then
        print("listen " .. name .. " " .. tostring(err) .. " " .. tostring(detail))
    else
        listeners[name] = listener
        listener.on_accept = function(stream)
            print("accepted " .. name .. " " .. stream.ip .. ":" .. stream.port)
            stream.on_call = function(msg, ...) stream.call("reply", name, msg, ...) end
            stream.on_error = function(err) print("closed " .. name .. " " .. tostring(err)) end
        end
        print("port " .. name .. " " .. listener.port)
    end
end
