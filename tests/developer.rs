//! What Lua developers expect (issue 12): C modules load, `luna -m` runs a
//! module from any directory, and errors give their cause.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Dir, Luna, run_to_end};

/// Copies tests/scripts/developer/<name> into `dir`.
fn copy_script(dir: &Dir, name: &str) -> PathBuf {
    dir.copy_script(name, &format!("developer/{name}"))
}

/// A C module written against the Lua 5.4 C API, compiled by the test with
/// the system C compiler. It declares the few API functions it uses itself,
/// so no Lua headers need to be installed.
const TINY_MODULE: &str = r#"
typedef struct lua_State lua_State;
typedef long long lua_Integer;
typedef int (*lua_CFunction)(lua_State *L);
extern void lua_pushinteger(lua_State *L, lua_Integer n);
extern lua_Integer luaL_checkinteger(lua_State *L, int arg);
extern void lua_createtable(lua_State *L, int narr, int nrec);
extern void lua_pushcclosure(lua_State *L, lua_CFunction fn, int n);
extern void lua_setfield(lua_State *L, int idx, const char *k);
static int add(lua_State *L) {
    lua_pushinteger(L, luaL_checkinteger(L, 1) + luaL_checkinteger(L, 2));
    return 1;
}
int luaopen_tiny(lua_State *L) {
    lua_createtable(L, 0, 1);
    lua_pushcclosure(L, add, 0);
    lua_setfield(L, -2, "add");
    return 1;
}
"#;

fn compile_tiny_module(dir: &Dir) {
    let source = dir.write("tiny.c", TINY_MODULE);
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.path("tiny.so"))
        .arg(&source)
        .output()
        .expect("run the C compiler `cc` (install gcc: `apt-get install -y gcc`)");
    assert!(
        output.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_c_module_compiled_against_the_lua_api_loads_from_the_entry_directory() {
    let dir = Dir::new();
    compile_tiny_module(&dir);
    let entry = copy_script(&dir, "c_modules.lua");
    // Started from another directory: the entry's own directory is searched first.
    let elsewhere = Dir::new();
    let (code, stdout, stderr) = run_to_end(elsewhere.dir.path(), &[entry.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("tiny add 42"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("tiny error true") && stdout.contains("bad argument #1 to"),
        "a C module's argument error is a normal Lua error:\n{stdout}"
    );
}

#[test]
fn distribution_modules_cjson_and_lpeg_load() {
    for module in ["cjson", "lpeg"] {
        let installed = Path::new(&format!(
            "/usr/lib/{}-linux-gnu/lua/5.4/{module}.so",
            std::env::consts::ARCH
        ))
        .exists();
        assert!(
            installed,
            "lua-{module} for Lua 5.4 is missing: run `apt-get install -y lua-cjson lua-lpeg` (bash .ci/run installs them)"
        );
    }
    let dir = Dir::new();
    compile_tiny_module(&dir);
    let entry = copy_script(&dir, "c_modules.lua");
    let (code, stdout, stderr) = run_to_end(dir.dir.path(), &[entry.to_str().unwrap(), "distro"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("cjson luna 3"), "{stdout}\n{stderr}");
    assert!(stdout.contains("lpeg hello"), "{stdout}\n{stderr}");
}

#[test]
fn luna_m_runs_the_shipped_router_and_modules_on_the_path_from_any_directory() {
    let elsewhere = Dir::new();
    let mut router = Luna::start_in(
        elsewhere.dir.path(),
        &["-m", "luna.router", "--listen", "127.0.0.1:0", "--heartbeat-ms", "200"],
    );
    let address = router.value("listening");
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    router.signal(libc::SIGTERM);
    assert!(router.wait_exit().success());

    // A module of the user's, found on LUA_PATH, with its arguments.
    let modules = Dir::new();
    copy_script(&modules, "my_service.lua");
    let lua_path = format!("{}/?.lua;;", modules.dir.path().display());
    let output = Command::new(common::luna_bin())
        .args(["-m", "my_service", "first-arg"])
        .current_dir(elsewhere.dir.path())
        .env("LUA_PATH", &lua_path)
        .output()
        .expect("run luna");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("module entry first-arg"), "{stdout}");

    let (code, _, stderr) = run_to_end(elsewhere.dir.path(), &["-m", "no.such.module"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no module 'no.such.module'"), "{stderr}");
}

#[test]
fn no_arguments_print_a_short_usage_and_misspelt_options_a_suggestion() {
    let dir = Dir::new();
    let (code, stdout, stderr) = run_to_end(dir.dir.path(), &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("usage: luna") && stderr.contains("-m MODULE"),
        "{stderr}"
    );
    assert!(stderr.lines().count() < 8, "a short usage:\n{stderr}");
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["--log-levl", "debug", "x.lua"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean --log-level?"), "{stderr}");
}

#[test]
fn entry_errors_point_at_the_users_file_with_one_traceback() {
    let dir = Dir::new();
    // Broken on purpose, so it stays out of tests/scripts/ (whose files must all compile).
    dir.write("bad_syntax.lua", "local x =\nfunction on_start() end\n");
    copy_script(&dir, "top_error.lua");
    copy_script(&dir, "start_error.lua");
    let cases = [
        ("bad_syntax.lua", "bad_syntax.lua:2: '(' expected near 'on_start'", 0),
        ("top_error.lua", "top_error.lua:1: boom at the top level", 1),
        ("start_error.lua", "start_error.lua:3: attempt to index a nil value", 1),
    ];
    for (file, message, tracebacks) in cases {
        let (code, _, stderr) = run_to_end(dir.dir.path(), &[file]);
        assert_eq!(code, 1, "{stderr}");
        let first = stderr.lines().find(|l| l.starts_with("luna: ")).unwrap_or_default();
        assert!(
            first.starts_with("luna: ") && first.contains(message) && !first.contains("runtime_lua"),
            "{file}: the first line names the user's file and line:\n{stderr}"
        );
        assert_eq!(
            stderr.matches("stack traceback:").count(),
            tracebacks,
            "{file}:\n{stderr}"
        );
        assert!(
            !stderr.contains("runtime_lua/"),
            "{file}: no frame of the runtime in the traceback:\n{stderr}"
        );
    }
}

#[test]
fn errors_give_their_cause() {
    let dir = Dir::new();
    let entry = copy_script(&dir, "error_causes.lua");
    let (code, stdout, stderr) = run_to_end(dir.dir.path(), &[entry.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line '{prefix}' in:\n{stdout}\n{stderr}"))
            .to_string()
    };
    assert!(line("refused connect-failed | ").contains("refused"), "{stdout}");
    assert!(
        line("unresolved addr-error | ").len() > "unresolved addr-error | ".len() + 3,
        "{stdout}"
    );
    assert!(
        line("bad connect invalid-param | ").contains("host (argument #1)"),
        "{stdout}"
    );
    assert!(
        line("bad listen invalid-param | ").contains("port (argument #2)"),
        "{stdout}"
    );
    assert!(line("bad id invalid-param | ").contains("group 1-255"), "{stdout}");
    assert!(line("unbindable addr-error | ").contains("os error"), "{stdout}");
    assert!(stderr.contains("listen on 203.0.113.7:1 failed"), "{stderr}");
    assert!(
        line("rpc nil | ").contains("cannot send a function (argument #3"),
        "the function is the 3rd argument of rpc.call(client, \"add\", print):\n{stdout}"
    );
}
