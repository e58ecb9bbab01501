-- The clocks' types, and one log line of each level.
local ms, ns = luna.get_time_ms(), luna.get_time_ns()
print("clock", math.type(ms), math.type(ns), ns // 1000000 - ms <= 1)
luna.log.debug("hidden debug")
luna.log.info("info line")
luna.log("warn", "warn line", 42)
luna.log.error("error line")
luna_quit_flag = true
