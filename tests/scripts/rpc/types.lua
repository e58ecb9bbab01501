-- Results of several types, several values and none.
when_ready(function()
    local a, b, c, d, e, f = node.call_target("2.1", "types")
    print("types " .. show(a, b, c, e, f), d.list[2], d.map.k)
    print("echo " .. show(node.call_target("2.1", "echo", 1, nil, 3.0, "x")))
    print("none " .. select("#", node.call_target("2.1", "echo")))
end)
