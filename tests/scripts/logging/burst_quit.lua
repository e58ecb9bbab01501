-- Logs COUNT lines, then quits at once: all of them must reach the log.
function on_start(count)
    for i = 1, math.tointeger(tonumber(count)) do
        luna.log.info("burst line " .. i)
    end
    luna_quit_flag = true
end
