//! import sandboxes and hot reload (SPEC section 2).

mod common;

use common::{Dir, Luna};

/// An entry that imports `lib/mod.lua` and prints `value <x>` on every reload.
const ENTRY: &str = r#"
    local mod = import("lib/mod.lua")
    function on_start() print("value " .. mod.value()) end
    function on_reload(path) print("reloaded " .. path:match("[^/]+$")); print("value " .. mod.value()) end
"#;

fn start_with_module(module: &str) -> (Dir, Luna) {
    let dir = Dir::new();
    dir.write("lib/mod.lua", module);
    let script = dir.write("main.lua", ENTRY);
    let mut luna = Luna::start(&script, &[]);
    assert_eq!(luna.value("value"), "v1");
    (dir, luna)
}

#[test]
fn import_returns_the_same_sandbox_and_keeps_globals_out_of_g() {
    let dir = Dir::new();
    dir.write(
        "lib/counter.lua",
        "loads = (loads or 0) + 1\nsecret = 'mine'\nfunction get() return loads end\n",
    );
    let script = dir.write(
        "main.lua",
        r#"
        local a = import("lib/counter.lua")
        local b = import("lib/counter.lua")
        print("same", a == b, a.get())
        print("leak", rawget(_G, "secret"), a.secret)
        print("reads fall through", a.print == print)
        print("entry sandboxed", rawget(_G, "on_start") == nil)
        local ok, err = pcall(import, "lib/missing.lua")
        print("missing", ok, err:match("cannot find 'lib/missing.lua'") ~= nil)
        function on_start() luna_quit_flag = true end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    luna.expect("same\ttrue\t1");
    luna.expect("leak\tnil\tmine");
    luna.expect("reads fall through\ttrue");
    luna.expect("entry sandboxed\ttrue");
    luna.expect("missing\tfalse\ttrue");
}

#[test]
fn relative_imports_prefer_the_entry_directory_then_the_current_one() {
    let dir = Dir::new();
    dir.write("app/shared.lua", "where = 'entry dir'");
    dir.write("shared.lua", "where = 'cwd'");
    dir.write("only_cwd.lua", "where = 'cwd only'");
    dir.write(
        "app/main.lua",
        r#"
        print("shared", import("shared.lua").where)
        print("fallback", import("only_cwd").where)
        luna_quit_flag = true
        "#,
    );
    let mut luna = Luna::start_in(dir.dir.path(), &["app/main.lua"]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    luna.expect("shared\tentry dir");
    luna.expect("fallback\tcwd only");
}

#[test]
fn reload_on_in_place_write_keeps_state() {
    let (dir, mut luna) =
        start_with_module("hits = hits or {n = 0}\nfunction value() hits.n = hits.n + 1 return 'v1' end\n");
    std::fs::write(
        dir.path("lib/mod.lua"),
        "hits = hits or {n = 0}\nfunction value() hits.n = hits.n + 1 return 'v2 calls=' .. hits.n end\n",
    )
    .unwrap();
    luna.expect("reloaded mod.lua");
    // The table made by the first version survived: this is its second call.
    assert_eq!(luna.value("value"), "v2 calls=2");
}

#[test]
fn reload_on_rename_save() {
    let (dir, mut luna) = start_with_module("function value() return 'v1' end\n");
    for version in ["v2", "v3"] {
        let temp = dir.path("lib/.mod.lua.swp");
        std::fs::write(&temp, format!("function value() return '{version}' end\n")).unwrap();
        std::fs::rename(&temp, dir.path("lib/mod.lua")).unwrap();
        assert_eq!(luna.value("value"), version);
    }
}

#[test]
fn reload_with_sed_in_place() {
    let (dir, mut luna) = start_with_module("function value() return 'v1' end\n");
    let status = std::process::Command::new("sed")
        .args(["-i", "s/v1/v2/", dir.path("lib/mod.lua").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(luna.value("value"), "v2");
}

#[test]
fn reload_of_the_entry_file_itself() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        "function on_start() print('version 1') end\nfunction on_reload() print('reload sees ' .. VERSION) end\nVERSION = 'one'\n",
    );
    let mut luna = Luna::start(&script, &[]);
    luna.expect("version 1");
    std::fs::write(
        &script,
        "function on_reload() print('reload sees ' .. VERSION) end\nVERSION = 'two'\n",
    )
    .unwrap();
    luna.expect("reload sees two");
}

#[test]
fn compile_error_keeps_old_code_and_logs_file_and_line() {
    let (dir, mut luna) = start_with_module("function value() return 'v1' end\n");
    std::fs::write(dir.path("lib/mod.lua"), "function value()\n  return 'v2'\nend end\n").unwrap();
    let line = luna.expect_err("reload failed");
    assert!(line.contains("mod.lua:3:"), "{line}");
    // Still the old code; a later good save works.
    std::fs::write(dir.path("lib/mod.lua"), "function value() return 'v3' end\n").unwrap();
    assert_eq!(luna.value("value"), "v3");
    assert!(!luna.stdout().iter().any(|l| l.contains("v2")));
}

#[test]
fn runtime_error_during_reload_is_logged() {
    let (dir, mut luna) = start_with_module("function value() return 'v1' end\n");
    std::fs::write(
        dir.path("lib/mod.lua"),
        "function value() return 'v2' end\nerror('reload blew up')\n",
    )
    .unwrap();
    let line = luna.expect_err("raised an error");
    assert!(line.contains("reload blew up"), "{line}");
    luna.expect_err("stack traceback");
}

#[test]
fn forced_reload_applies_changes_now() {
    let dir = Dir::new();
    dir.write("lib/mod.lua", "function value() return 'v1' end\n");
    let script = dir.write(
        "main.lua",
        r#"
        local mod = import("lib/mod.lua")
        function on_start()
            local before = mod.value()
            local file = io.open(luna.args[1], "w")
            file:write("function value() return 'v2' end\n")
            file:close()
            local count = luna.reload()
            print("forced", before, mod.value(), count)
            luna_quit_flag = true
        end
        "#,
    );
    let module = dir.path("lib/mod.lua");
    let mut luna = Luna::start(&script, &[module.to_str().unwrap()]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    luna.expect("forced\tv1\tv2\t1");
}
