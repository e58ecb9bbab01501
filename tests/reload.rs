//! import sandboxes and hot reload (README "import and hot reload").
//!
//! The scripts are in tests/scripts/reload/; the versions a test saves over
//! a running module are in tests/scripts/reload/versions/.

mod common;

use std::path::Path;

use common::{Dir, Luna, test_script};

/// Saves tests/scripts/reload/versions/<version>.lua over `path` (written in place).
fn save(path: &Path, version: &str) {
    std::fs::copy(test_script(&format!("reload/versions/{version}.lua")), path).unwrap();
}

/// Starts reload/entry.lua in a fresh directory, its lib/mod.lua being
/// `module` (a file of versions/), and waits for its first value, `v1`.
fn start_with_module(module: &str) -> (Dir, Luna) {
    let dir = Dir::new();
    dir.copy_script("lib/mod.lua", &format!("reload/versions/{module}.lua"));
    let script = dir.copy_script("main.lua", "reload/entry.lua");
    let mut luna = Luna::start(&script, &[]);
    assert_eq!(luna.value("value"), "v1");
    (dir, luna)
}

#[test]
fn import_returns_the_same_sandbox_and_keeps_globals_out_of_g() {
    let mut luna = Luna::start(&test_script("reload/sandbox.lua"), &[]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    luna.expect("same\ttrue\t1");
    luna.expect("leak\tnil\tmine");
    luna.expect("reads fall through\ttrue");
    luna.expect("entry sandboxed\ttrue");
    luna.expect("missing\tfalse\ttrue");
}

#[test]
fn relative_imports_prefer_the_entry_directory_then_the_current_one() {
    let mut luna = Luna::start_in(&test_script("reload/relative"), &["app/main.lua"]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    luna.expect("shared\tentry dir");
    luna.expect("fallback\tcwd only");
}

#[test]
fn reload_on_in_place_write_keeps_state() {
    let (dir, mut luna) = start_with_module("hits_v1");
    save(&dir.path("lib/mod.lua"), "hits_v2");
    luna.expect("reloaded mod.lua");
    // The table made by the first version survived: this is its second call.
    assert_eq!(luna.value("value"), "v2 calls=2");
}

#[test]
fn reload_on_rename_save() {
    let (dir, mut luna) = start_with_module("value_v1");
    for version in ["v2", "v3"] {
        let temp = dir.path("lib/.mod.lua.swp");
        save(&temp, &format!("value_{version}"));
        std::fs::rename(&temp, dir.path("lib/mod.lua")).unwrap();
        assert_eq!(luna.value("value"), version);
    }
}

#[test]
fn reload_with_sed_in_place() {
    let (dir, mut luna) = start_with_module("value_v1");
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
    let script = dir.copy_script("main.lua", "reload/versions/entry_v1.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("version 1");
    save(&script, "entry_v2");
    luna.expect("reload sees two");
}

#[test]
fn compile_error_keeps_old_code_and_logs_file_and_line() {
    let (dir, mut luna) = start_with_module("value_v1");
    // Broken on purpose (an extra `end` on line 3), so it stays out of
    // tests/scripts/, whose files must all compile.
    std::fs::write(dir.path("lib/mod.lua"), "function value()\n  return 'v2'\nend end\n").unwrap();
    let line = luna.expect_err("reload failed");
    assert!(line.contains("mod.lua:3:"), "{line}");
    // Still the old code; a later good save works.
    save(&dir.path("lib/mod.lua"), "value_v3");
    assert_eq!(luna.value("value"), "v3");
    assert!(!luna.stdout().iter().any(|l| l.contains("v2")));
}

#[test]
fn runtime_error_during_reload_is_logged() {
    let (dir, mut luna) = start_with_module("value_v1");
    save(&dir.path("lib/mod.lua"), "raises");
    let line = luna.expect_err("raised an error");
    assert!(line.contains("reload blew up"), "{line}");
    luna.expect_err("stack traceback");
}

#[test]
fn forced_reload_applies_changes_now() {
    let dir = Dir::new();
    dir.copy_script("lib/mod.lua", "reload/versions/value_v1.lua");
    let script = dir.copy_script("main.lua", "reload/forced.lua");
    let module = dir.path("lib/mod.lua");
    let mut luna = Luna::start(&script, &[module.to_str().unwrap()]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    luna.expect("forced\tv1\tv2\t1");
}
