-- luna-bench: a service behind the router (W3, W4).
-- args: router_port my_id mode peer_id
--   mode "echo" (W3): answer each ("echo", i, p) with
--       stream.forward_target(peer_id, "echo", i, p) through the router.
--   mode "count" (W4): count deliveries; every 100 deliveries send
--       ("ack", my_index, count) to peer_id (the sender's flow control);
--       on ("mark", 1) note count and time, on ("mark", 2) print
--       "result <deliveries> <elapsed_ns>".
-- Prints "ready" once the router confirmed the registration.
local args = luna.args
local port = assert(tonumber(args[1]), "router port")
local my_id = assert(tonumber(args[2]), "service id")
local mode = args[3] or "echo"
local peer_id = assert(tonumber(args[4]), "peer id")
local my_index = luna.service_index(my_id)

local common = import("common.lua")
mgr = luna.create_socket_mgr(16)
stream = assert(mgr.connect("127.0.0.1", port, 5000, common.connect_options()))
local s = stream
local forward_target = s.forward_target
local count, c0, t0 = 0, 0, 0

s.on_connect = function(result)
    if result ~= "ok" then
        print("error connect: " .. tostring(result))
        luna_quit_flag = true
        return
    end
    s.call("register", my_id)
end

if mode == "echo" then
    s.on_call = function(msg, i, payload)
        if msg == "echo" then
            forward_target(peer_id, msg, i, payload)
        elseif msg == "registered" then
            print("ready")
        else
            print("error unexpected message " .. tostring(msg))
        end
    end
else
    s.on_call = function(msg, i, payload)
        if msg == "echo" then
            count = count + 1
            if count % 100 == 0 then forward_target(peer_id, "ack", my_index, count) end
        elseif msg == "mark" then
            if i == 1 then
                c0, t0 = count, luna.get_time_ns()
            else
                print(string.format("result %d %d", count - c0, luna.get_time_ns() - t0))
            end
        elseif msg == "registered" then
            print("ready")
        else
            print("error unexpected message " .. tostring(msg))
        end
    end
end

common.report_errors(s)
