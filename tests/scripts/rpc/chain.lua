-- A call that 2.1 passes on to 3.1, which passes it on to 4.1.
when_ready(function() print("chain " .. show(node.call_target("2.1", "chain", 2))) end)
