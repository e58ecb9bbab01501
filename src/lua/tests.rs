//! The `luna` module's functions on a real Lua state and host, without a
//! process: argument checks, results, and one loopback round trip through
//! the loop and the dispatch of a call.

use mlua::{Lua, Table};

use super::test_support::Bindings;
use super::{Endpoint, Options, host, install_module};
use crate::route::{hash_bytes, service_id};

#[test]
fn service_ids_both_ways_and_their_errors() {
    let lua = Bindings::new();
    let id: i64 = lua.eval("return luna.service_id('3.4')");
    assert_eq!(id, i64::from(service_id::from_parts(3, 4).unwrap()));
    assert_eq!(lua.eval::<i64>("return luna.service_id(3, 4)"), id);
    assert_eq!(
        lua.eval::<(i64, i64, String)>(&format!(
            "return luna.service_group({id}), luna.service_index({id}), luna.service_name({id})"
        )),
        (3, 4, "3.4".into())
    );
    let (value, error, detail): (Option<i64>, String, String) = lua.eval("return luna.service_id('3.x')");
    assert_eq!((value, error.as_str()), (None, "invalid-param"));
    assert!(detail.contains("group.index"), "{detail}");
    let (value, error): (Option<i64>, String) = lua.eval("return luna.service_group('3.4')");
    assert_eq!(
        (value, error.as_str()),
        (None, "invalid-param"),
        "a name is not an id here"
    );
}

#[test]
fn hash_key_is_the_routers_hash() {
    let lua = Bindings::new();
    let of_string: i64 = lua.eval("return luna.hash_key('player-42')");
    assert_eq!(of_string as u64, hash_bytes(b"player-42"));
    assert_eq!(lua.eval::<i64>("return luna.hash_key(42)"), 42);
    assert_eq!(lua.eval::<i64>("return luna.hash_key(42.0)"), 42);
    let (value, error): (Option<i64>, String) = lua.eval("return luna.hash_key({})");
    assert_eq!((value, error.as_str()), (None, "invalid-param"));
}

#[test]
fn secret_equals_compares_whole_strings() {
    let lua = Bindings::new();
    let results: (bool, bool, bool) = lua.eval(
        "return luna._secret_equals('abc', 'abc'), luna._secret_equals('abc', 'abd'),
                luna._secret_equals('abc', 'abc\\0')",
    );
    assert_eq!(results, (true, false, false));
    let (value, error): (Option<bool>, String) = lua.eval("return luna._secret_equals('abc', 1)");
    assert_eq!(value, None);
    assert!(error.contains("two strings"), "{error}");
}

#[test]
fn realpath_takes_any_bytes_and_wants_a_file() {
    use std::os::unix::ffi::OsStrExt;
    let lua = Bindings::new();
    let dir = tempfile::tempdir().unwrap();
    // Not UTF-8: a Unix path is bytes, and the bytes reach the file system as they are.
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.lua");
    std::fs::write(dir.path().join(name), "").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let real: mlua::LuaString = lua
        .lua
        .load("local dir = ... return luna.realpath(dir .. '/sub/../caf\\233.lua')")
        .call(dir.path().to_str().unwrap().to_string())
        .unwrap();
    assert!(real.as_bytes().ends_with(b".lua") && !real.as_bytes().windows(4).any(|w| w == b"/../"));
    let (value, error): (Option<String>, String) = lua
        .lua
        .load("return luna.realpath(...)")
        .call(dir.path().to_str().unwrap().to_string())
        .unwrap();
    assert_eq!((value, error.as_str()), (None, "not a file"));
    let (value, _error): (Option<String>, String) = lua.eval("return luna.realpath('/no/such/file')");
    assert_eq!(value, None);
}

#[test]
fn timers_start_list_run_and_cancel() {
    let lua = Bindings::new();
    let (first, second): (i64, i64) = lua.eval(
        "fired = 0
         return luna.timer_start(0, nil, function() fired = fired + 1 end),
                luna.timer_start(60000, 1000, function() end)",
    );
    let (list, total): (Table, i64) = lua.eval("return luna._timers()");
    assert_eq!(total, 2);
    let soonest: Table = list.get(1).unwrap();
    assert_eq!(soonest.get::<i64>("id").unwrap(), first);
    let later: Table = list.get(2).unwrap();
    assert_eq!(later.get::<i64>("period_ms").unwrap(), 1000);
    assert!(later.get::<mlua::Function>("fn").is_ok());
    // One pass runs the due timer, once.
    assert!(lua.eval::<i64>("return luna.wait(0)") >= 1);
    lua.eval::<()>("luna.wait(0)");
    assert_eq!(lua.eval::<i64>("return fired"), 1);
    assert!(lua.eval::<bool>(&format!("return luna.timer_cancel({second})")));
    assert!(!lua.eval::<bool>(&format!("return luna.timer_cancel({second})")));
    let (value, error): (Option<i64>, String) = lua.eval("return luna.timer_start(10, nil, 'not a function')");
    assert_eq!(value, None);
    assert!(error.contains("a function is required"), "{error}");
}

#[test]
fn a_wait_inside_a_callback_is_an_error_and_the_loop_goes_on() {
    let lua = Bindings::new();
    let message: String = lua.eval(
        "luna.timer_start(0, nil, function() nested_ok, nested_error = pcall(luna.wait, 0) end)
         luna.wait(0)
         assert(not nested_ok)
         return tostring(nested_error)",
    );
    assert!(message.contains("cannot run inside a callback"), "{message}");
    assert!(lua.eval::<i64>("return luna.wait(0)") >= 0, "the flag was cleared");
}

#[test]
fn process_stats_and_connections_describe_the_host() {
    let lua = Bindings::new();
    let stats: Table = lua.eval(
        "mgr = luna.create_socket_mgr(4)
         listener = assert(mgr.listen('127.0.0.1', 0))
         return luna.process_stats()",
    );
    for key in ["uptime_ms", "timers", "open_files", "log_dropped"] {
        assert!(stats.get::<i64>(key).is_ok(), "{key}");
    }
    let managers: Table = stats.get("managers").unwrap();
    let counters: Table = managers.get(1).unwrap();
    assert_eq!(counters.get::<i64>("max_fd").unwrap(), 4);
    assert_eq!(counters.get::<i64>("open").unwrap(), 1);
    let own: Table = lua.eval("return mgr.stats()");
    assert_eq!(own.get::<i64>("open").unwrap(), 1);
    let connections: Table = lua.eval("return luna.connections()");
    assert_eq!(connections.raw_len(), 1);
    let listener: Table = connections.get(1).unwrap();
    assert_eq!(listener.get::<String>("ip").unwrap(), "127.0.0.1");
    assert_eq!(listener.get::<i64>("mgr").unwrap(), 1);
    assert_eq!(
        listener.get::<i64>("port").unwrap(),
        lua.eval::<i64>("return listener.port")
    );
}

#[test]
fn socket_arguments_are_checked_before_anything_opens() {
    let lua = Bindings::new();
    let cases = [
        ("luna.create_socket_mgr(0)", "max_fd (argument #1)"),
        ("mgr.listen(1, 0)", "ip (argument #1)"),
        ("mgr.listen('127.0.0.1', 70000)", "port (argument #2)"),
        (
            "mgr.listen('127.0.0.1', 0, { secret = '' })",
            "options (argument #3): secret must not be empty",
        ),
        ("mgr.listen('127.0.0.1', 0, { framing = 'json' })", "framing must be"),
        ("mgr.connect({}, 1)", "host (argument #1)"),
        ("mgr.route('x', 1)", "service id (argument #1)"),
        ("mgr.set_max_ids(-1)", "the limit (argument #1)"),
    ];
    lua.eval::<()>("mgr = luna.create_socket_mgr(8)");
    for (call, expected) in cases {
        let (value, error, detail): (mlua::Value, String, String) = lua.eval(&format!("return {call}"));
        assert!(value.is_nil(), "{call}");
        assert_eq!(error, "invalid-param", "{call}");
        assert!(detail.contains(expected), "{call}: {detail}");
    }
    assert_eq!(lua.eval::<i64>("return mgr.stats().open"), 0);
}

#[test]
fn a_call_goes_round_the_loop_to_on_call() {
    let lua = Bindings::new();
    let received: Table = lua.eval(
        "local mgr = luna.create_socket_mgr(8)
         local listener = assert(mgr.listen('127.0.0.1', 0))
         local got
         listener.on_accept = function(stream)
             stream.on_call = function(...) got = table.pack(...) end
         end
         local client = assert(mgr.connect('127.0.0.1', listener.port, 5000))
         client.on_connect = function(err)
             assert(err == 'ok', err)
             assert(client.call('echo', 1, { k = 'v' }, '\\255'))
             assert(client.forward_hash(1, 'key', 'x') > 0, 'forward arguments are read')
         end
         for _ = 1, 500 do
             if got then break end
             mgr.wait(10)
         end
         return assert(got, 'no call arrived')",
    );
    assert_eq!(received.get::<i64>("n").unwrap(), 4);
    assert_eq!(received.get::<String>(1).unwrap(), "echo");
    assert_eq!(received.get::<i64>(2).unwrap(), 1);
    assert_eq!(received.get::<Table>(3).unwrap().get::<String>("k").unwrap(), "v");
    assert_eq!(received.get::<mlua::LuaString>(4).unwrap().as_bytes().to_vec(), b"\xff");
}

#[test]
fn install_module_sets_up_luna_and_its_aliases() {
    let lua = Lua::new();
    let options = Options {
        entry: "main.lua".into(),
        module: false,
        args: vec!["a".into(), "b".into()],
        runtime_dir: None,
        metrics: Some(Endpoint {
            host: "127.0.0.1".into(),
            port: 9100,
        }),
        console: None,
    };
    install_module(&lua, &options).unwrap();
    let checks: (String, String, i64, String, i64, bool, bool, bool, String) = lua
        .load(
            "return luna.args[0], luna.args[2], #luna.args, luna.options.metrics.host,
                    luna.options.metrics.port, luna.options.console == nil, luna.options.module,
                    package.loaded.lbus == luna and package.loaded.luna == luna, luna.version",
        )
        .eval()
        .unwrap();
    assert_eq!(
        checks,
        (
            "main.lua".into(),
            "b".into(),
            2,
            "127.0.0.1".into(),
            9100,
            true,
            false,
            true,
            env!("CARGO_PKG_VERSION").into()
        )
    );
    assert_eq!(
        lua.load("return luna.arch").eval::<String>().unwrap(),
        std::env::consts::ARCH
    );
    assert!(lua.load("return luna.runtime_dir == nil").eval::<bool>().unwrap());
    // The runtime searcher comes right after the preload searcher.
    let found: (mlua::Value, String) = lua.load("return package.searchers[2]('luna.log')").eval().unwrap();
    assert!(found.0.is_function(), "a chunk for luna.log");
    assert_eq!(found.1, "runtime_lua/log.lua");
    host::uninstall();
}
