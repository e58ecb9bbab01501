-- Edit me while the hello service runs.
function say(count)
    return "hello #" .. count .. " from luna"
end
