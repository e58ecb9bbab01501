-- Logs a line, then fails in on_start: exit status 1 with a traceback.
luna.log.info("before the error")

local function fail()
    error("boom in on_start")
end

function on_start()
    fail()
end
