-- The shipped router (runtime_lua/router.lua, same command line and
-- environment), plus the `stats ...` lines of common.print_stats for its
-- socket manager (auth_failed, tls_failed, bad_packages, open).
local common = import("common.lua")
local router_module = require("luna.router")
router = router or router_module.start(router_module.parse_args(luna.args))
common.print_stats(router.mgr)
