-- luna-bench: helpers shared by the bench scripts (imported).

-- How links are secured, from the environment luna-bench sets for the
-- W2.secret/W3.secret (LUNA_BENCH_SECRET) and W2.tls/W3.tls runs
-- (LUNA_BENCH_TLS_DIR: ca.pem, server.pem, server.key). Unset: plain.
local secret = os.getenv("LUNA_BENCH_SECRET")
local tls_dir = os.getenv("LUNA_BENCH_TLS_DIR")

--- The options of mgr.listen.
function listen_options()
    return {
        secret = secret,
        tls = tls_dir and { cert = tls_dir .. "/server.pem", key = tls_dir .. "/server.key" },
    }
end

--- The options of mgr.connect (to 127.0.0.1, which the certificate names).
function connect_options()
    return { secret = secret, tls = tls_dir and { ca = tls_dir .. "/ca.pem" } }
end

--- Prints every failure of `stream` as an `error ...` line (the bench fails
--- a workload on any such line); a broken stream also ends the process.
function report_errors(stream)
    stream.on_forward_error = function(err, mode, target)
        print("error forward " .. tostring(err) .. " " .. tostring(mode) .. " " .. tostring(target))
    end
    stream.on_error = function(err)
        print("error stream: " .. tostring(err))
        luna_quit_flag = true
    end
end
