-- Logs COUNT lines, then leaves through os.exit(3): the lines must still reach the log.
function on_start(count)
    for i = 1, math.tointeger(tonumber(count)) do
        luna.log.info("exit line " .. i)
    end
    os.exit(3)
end
