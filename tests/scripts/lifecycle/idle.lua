-- Prints `ready`, idles until a signal, prints `stopped`.
function on_start() print("ready") end
function on_stop() print("stopped") end
