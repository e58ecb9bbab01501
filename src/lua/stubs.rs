//! Editor stubs: LuaLS/EmmyLua `---@meta` files describing the whole luna
//! API (runtime_lua/meta/), compiled in and written out by `luna --stubs DIR`
//! so users need no checkout for completion and type checks.

use std::path::Path;

/// (file name, contents) of every stub file.
pub const STUBS: &[(&str, &str)] = &[];

/// Writes every stub file into `dir` (created if missing); returns how many.
pub fn write_stubs(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in STUBS {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(STUBS.len())
}
