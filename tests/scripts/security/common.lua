-- Helpers shared by the scripts of tests/security.rs. Settings come from
-- environment variables; what happens is printed on stdout as
-- machine-readable lines that the tests wait for.

-- env(name, default), num(name, default) and list(name), from ../common/env.lua.
local settings = import("../common/env.lua")
env, num, list = settings.env, settings.num, settings.list

--- The `tls` table from PREFIX_CA, PREFIX_CERT, PREFIX_KEY, PREFIX_SERVER_NAME
--- and PREFIX_REQUIRE_CLIENT_CERT=1, or nil when none is set.
function tls_options(prefix)
    local tls = {
        ca = env(prefix .. "_CA"),
        cert = env(prefix .. "_CERT"),
        key = env(prefix .. "_KEY"),
        server_name = env(prefix .. "_SERVER_NAME"),
        require_client_cert = env(prefix .. "_REQUIRE_CLIENT_CERT") == "1" or nil,
    }
    if next(tls) == nil then return nil end
    return tls
end

--- The options of mgr.listen/mgr.connect from PREFIX_SECRET, the tls
--- variables above and PREFIX_HANDSHAKE_MS.
function link_options(prefix)
    return {
        secret = env(prefix .. "_SECRET"),
        tls = tls_options(prefix),
        handshake_timeout_ms = num(prefix .. "_HANDSHAKE_MS"),
    }
end

local STATS = { "auth_failed", "tls_failed", "bad_packages", "open" }

--- Prints `stats auth_failed=N tls_failed=N bad_packages=N open=N` for `mgr`
--- whenever one of them changes.
function print_stats(mgr)
    local last
    return luna.interval(20, function()
        local stats = mgr.stats()
        local parts = {}
        for _, name in ipairs(STATS) do parts[#parts + 1] = name .. "=" .. tostring(stats[name]) end
        local line = "stats " .. table.concat(parts, " ")
        if line ~= last then
            last = line
            print(line)
        end
    end)
end
