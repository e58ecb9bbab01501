-- The Lua side of a luna process, run once before the entry script.
-- Each piece lives in its own module; `require("luna.<name>")` finds them,
-- compiled into the binary or, with --runtime DIR, read from DIR.
require("luna.log")
require("luna.timer")
require("luna.import")
require("luna.entry")
require("luna.metrics") -- luna.metrics: script metrics, served with --metrics

-- The seed luna exposed the socket manager constructor as a global.
create_socket_mgr = luna.create_socket_mgr
