//! The command line: --help, --version, --check, --runtime.

mod common;

use common::{Dir, Luna, run_to_end, script_arg};

#[test]
fn version_and_help() {
    let dir = Dir::new();
    let (code, stdout, _) = run_to_end(dir.dir.path(), &["--version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), format!("luna {}", env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = run_to_end(dir.dir.path(), &["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("usage: luna"), "{stdout}");
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown option '--frobnicate'"), "{stderr}");
}

#[test]
fn check_compiles_without_running() {
    let dir = Dir::new();
    let good = script_arg("cli/must_not_run.lua");
    let also_good = script_arg("cli/entry_ran.lua");
    // Broken on purpose, so it stays out of tests/scripts/ (whose files must all compile).
    dir.write("bad.lua", "local x = \nfunction(\n");
    let (code, stdout, stderr) = run_to_end(dir.dir.path(), &["--check", &good, &also_good]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.contains("must not run") && !stdout.contains("entry ran"),
        "{stdout}"
    );
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["--check", &good, "bad.lua"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("bad.lua:2:") || stderr.contains("bad.lua:3:"),
        "{stderr}"
    );
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["--check", "absent.lua"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("absent.lua"), "{stderr}");
}

fn copy_runtime(dir: &Dir) -> std::path::PathBuf {
    let runtime = dir.path("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua");
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), runtime.join(entry.file_name())).unwrap();
        }
    }
    let entry = runtime.join("entry.lua");
    let text = std::fs::read_to_string(&entry).unwrap();
    // An edit of the copy, as a developer would make: a line showing which runtime ran.
    std::fs::write(&entry, format!("print('custom runtime')\n{text}")).unwrap();
    runtime
}

#[test]
fn runtime_override_from_flag_and_environment() {
    let dir = Dir::new();
    let runtime = copy_runtime(&dir);
    let entry = script_arg("cli/entry_ran.lua");
    let mut luna = Luna::start_in(dir.dir.path(), &["--runtime", runtime.to_str().unwrap(), &entry]);
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    assert_eq!(luna.stdout(), vec!["custom runtime", "entry ran"]);

    let mut luna = Luna::start_with(
        dir.dir.path(),
        &[&entry],
        &[("LUNA_RUNTIME", runtime.to_str().unwrap())],
    );
    assert!(luna.wait_exit().success(), "{}", luna.stderr());
    assert_eq!(luna.stdout(), vec!["custom runtime", "entry ran"]);

    // Without the override the embedded runtime runs.
    let mut luna = Luna::start_in(dir.dir.path(), &[&entry]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["entry ran"]);
}
