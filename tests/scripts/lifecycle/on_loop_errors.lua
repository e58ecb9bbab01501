-- An on_loop that fails on every pass; the third pass quits.
local passes = 0
function on_loop()
    passes = passes + 1
    if passes == 3 then print("third pass"); luna_quit_flag = true end
    error("loop failure " .. passes)
end
