-- luna-bench: helpers shared by the bench scripts (imported).

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
