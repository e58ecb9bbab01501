-- The clocks' types, and one log line of each level.
-- ns is read first: a pause between the two reads cannot make ns look ahead of ms.
local ns = luna.get_time_ns()
local ms = luna.get_time_ms()
print("clock", math.type(ms), math.type(ns), ns // 1000000 - ms <= 1)
luna.log.debug("hidden debug")
luna.log.info("info line")
luna.log("warn", "warn line", 42)
luna.log.error("error line")
luna_quit_flag = true
