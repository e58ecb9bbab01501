-- `luna round_trip.lua <port> <seed>`: 500 calls of fixed and random values
-- through the echo server; prints a `mismatch` line for any that differs.
local V = import("values.lua")
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
local sent, received, rounds = {}, 0, 500
stream.on_connect = function(result)
    assert(result == "ok")
    -- Fixed cases first: nil inside and at the end of argument lists.
    sent[1] = table.pack(nil, 1, nil)
    sent[2] = table.pack("x", nil, nil, nil)
    sent[3] = table.pack({ 1, nil, 3 }, { [1] = "a", [3] = "c" }, {}, { n = 1, 10, 20 })
    sent[4] = table.pack(1, 1.0, -1, 0.5, math.maxinteger, math.mininteger, "\0\255\128")
    for i = 5, rounds do
        local args = { n = 0 }
        for j = 1, (i % 5) + 1 do args[j] = V.value(1); args.n = j end
        sent[i] = args
    end
    for i = 1, rounds do assert(stream.call(table.unpack(sent[i], 1, sent[i].n))) end
end
stream.on_call = function(kind, ...)
    received = received + 1
    local expected = sent[received]
    local got = table.pack(...)
    if got.n ~= expected.n then print("count mismatch at " .. received) end
    for j = 1, expected.n do
        if not V.equal(expected[j], got[j]) then print("value mismatch at " .. received .. " arg " .. j) end
    end
    if received == rounds then print("checked " .. rounds); luna_quit_flag = true end
end
