-- Writes MARKER (the first argument) in on_start, so a test that receives
-- READY=1 can check on_start had run, then serves until a quit signal.
function on_start(marker)
    local file = assert(io.open(marker, "w"))
    file:write("on_start ran\n")
    file:close()
    print("started")
end

function on_stop()
    print("stopped")
end
