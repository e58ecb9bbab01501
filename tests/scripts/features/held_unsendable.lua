-- A forward held for 2.5's route whose message cannot be sent (a function):
-- once 2.5 registers, its send fails and goes to on_forward_error
-- (`forward_error ...`); a sendable one held with it is delivered.
when_ready(function()
    node.wait_for_route(10000)
    node.forward_target("2.5", "note", print)
    node.forward_target("2.5", "note", "held")
    print("waiting")
end)
