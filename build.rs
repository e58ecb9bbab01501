//! Exports the embedded Lua's C API from the binaries so that Lua C modules
//! (cjson, lpeg, lfs...) loaded with `require` find `lua_*` and `luaL_*` in
//! the process, as they do in the standalone `lua` interpreter (skynet links
//! with `-Wl,-E` for the same reason). Only the Lua API is exported (a
//! dynamic list, not `-rdynamic`), so the binary's symbol table stays small.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let list = out.join("lua-api.dynamic-list");
    std::fs::write(&list, "{\n  lua_*;\n  luaL_*;\n  luaopen_*;\n};\n").expect("write the dynamic list");
    println!("cargo:rustc-link-arg-bins=-Wl,--dynamic-list={}", list.display());
}
