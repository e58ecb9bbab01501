//! Editor stubs: LuaLS/EmmyLua `---@meta` files describing the whole luna
//! API (runtime_lua/meta/), compiled in and written out by `luna --stubs DIR`
//! so users need no checkout for completion and type checks.

use std::path::Path;

/// (file name relative to the stubs directory, contents) of every stub file.
/// `luna/rpc.lua` is what LuaLS finds for `require("luna.rpc")`.
pub const STUBS: &[(&str, &str)] = &[
    ("luna.lua", include_str!("../../runtime_lua/meta/luna.lua")),
    ("lbus.lua", include_str!("../../runtime_lua/meta/lbus.lua")),
    ("luna/log.lua", include_str!("../../runtime_lua/meta/luna/log.lua")),
    ("luna/rpc.lua", include_str!("../../runtime_lua/meta/luna/rpc.lua")),
    (
        "luna/cluster.lua",
        include_str!("../../runtime_lua/meta/luna/cluster.lua"),
    ),
    (
        "luna/router.lua",
        include_str!("../../runtime_lua/meta/luna/router.lua"),
    ),
    ("luna/redis.lua", include_str!("../../runtime_lua/meta/luna/redis.lua")),
    (
        "luna/discovery.lua",
        include_str!("../../runtime_lua/meta/luna/discovery.lua"),
    ),
    (
        "luna/metrics.lua",
        include_str!("../../runtime_lua/meta/luna/metrics.lua"),
    ),
    (
        "luna/console.lua",
        include_str!("../../runtime_lua/meta/luna/console.lua"),
    ),
    (
        "luna/import.lua",
        include_str!("../../runtime_lua/meta/luna/import.lua"),
    ),
];

/// Writes every stub file into `dir` (created if missing, with the
/// subdirectories the file names need); returns how many.
pub fn write_stubs(dir: &Path) -> std::io::Result<usize> {
    for (name, text) in STUBS {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(STUBS.len())
}
