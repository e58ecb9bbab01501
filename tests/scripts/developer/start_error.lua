function on_start()
    local settings = nil
    return settings.port
end
