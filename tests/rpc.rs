//! Coroutine RPC (README "Calls with results"): results, errors, timeouts, reloads, load.

mod common;

use common::cluster::Cluster;
use common::{Luna, script_arg, test_script};

/// A cluster of tests/scripts/rpc/service.lua services whose handlers are a
/// copy of rpc/handlers.lua in the cluster's directory (so that a test may
/// edit them); clients run rpc/client_head.lua.
fn new_cluster(router_args: &[&str]) -> Cluster {
    let mut cluster = Cluster::new("rpc/service.lua", "rpc/client_head.lua", 1, router_args);
    let handlers = cluster.dir.copy_script("handlers.lua", "rpc/handlers.lua");
    cluster.set_service_env("HANDLERS", handlers.to_str().unwrap());
    cluster
}

fn cluster(services: &[&str]) -> Cluster {
    let mut cluster = new_cluster(&[]);
    for id in services {
        cluster.start_service(id);
    }
    cluster
}

#[test]
fn results_of_several_types_come_back() {
    let cluster = cluster(&["2.1"]);
    let mut client = cluster.start_client("9.1", "rpc/types.lua");
    assert_eq!(client.value("types"), "integer:1 float:2.5 text nil true\t2\tv");
    assert_eq!(client.value("echo"), "integer:1 nil float:3.0 x");
    assert_eq!(client.value("none"), "0");
}

#[test]
fn nested_calls_three_deep() {
    let cluster = cluster(&["2.1", "3.1", "4.1"]);
    let mut client = cluster.start_client("9.1", "rpc/chain.lua");
    assert_eq!(client.value("chain"), "2.1>3.1>4.1");
}

#[test]
fn timeout_fires_and_a_late_reply_is_dropped() {
    let cluster = cluster(&["2.1"]);
    let mut client = cluster.start_client("9.1", "rpc/timeout.lua");
    assert_eq!(client.value("first"), "nil timeout true");
    assert_eq!(client.value("second"), "fresh");
    assert_eq!(client.value("late"), "1 pending 0");
}

#[test]
fn remote_error_no_route_and_connection_lost_are_different() {
    let mut cluster = cluster(&["2.1", "2.2"]);
    let mut client = cluster.start_client("9.1", "rpc/errors.lua");
    let remote = client.value("remote");
    assert!(
        remote.starts_with("nil remote-error: ") && remote.ends_with("bad thing"),
        "{remote}"
    );
    assert_eq!(client.value("nomethod"), "nil remote-error: no method 'nope'");
    let unsendable = client.value("unsendable");
    assert!(
        unsendable.starts_with("nil remote-error: cannot send the results: cannot send a function"),
        "{unsendable}"
    );
    assert_eq!(client.value("noroute"), "nil no-route fast=true");
    client.expect("calling");
    cluster.services.get_mut("2.2").unwrap().expect("sleeping 15000");
    cluster.kill_service("2.2");
    assert_eq!(client.value("lost"), "nil connection-lost fast=true");
}

#[test]
fn hot_reload_of_a_handler_changes_the_next_answer() {
    let mut cluster = cluster(&["2.1"]);
    let mut client = cluster.start_client("9.1", "rpc/poll_version.lua");
    assert_eq!(client.value("answer"), "v1 from 2.1");
    // Edit the handlers the way a developer would.
    let handlers = cluster.dir.path("handlers.lua");
    let text = std::fs::read_to_string(&handlers).unwrap();
    std::fs::write(&handlers, text.replace("\"v1 from \"", "\"v2 from \"")).unwrap();
    cluster.services.get_mut("2.1").unwrap().expect("reloaded handlers.lua");
    common::eventually("the new answer", || {
        (client.value("answer") == "v2 from 2.1").then_some(())
    });
}

#[test]
fn ten_thousand_concurrent_calls_complete_with_the_right_results() {
    let cluster = cluster(&["2.1", "2.2"]);
    let mut client = cluster.start_client("9.1", "rpc/ten_thousand.lua");
    assert_eq!(client.value("done"), "10000 wrong 0 pending 0");
}

#[test]
fn broadcast_call_reports_the_failing_instance_and_returns_the_others() {
    let mut cluster = new_cluster(&[]);
    cluster.start_service("4.1");
    cluster.start_service("4.2");
    // 4.3 uses the broken handlers.
    let bad_handlers = script_arg("rpc/handlers_bad.lua");
    let _bad = cluster.start_service_with("4.3", &[("HANDLERS", &bad_handlers)]);
    let mut client = cluster.start_client("9.1", "rpc/broadcast_call.lua");
    assert_eq!(client.value("result"), "4.1 true v1 from 4.1");
    assert_eq!(client.value("result"), "4.2 true v1 from 4.2");
    let bad_line = client.value("result");
    assert!(
        bad_line.starts_with("4.3 false remote-error: ") && bad_line.ends_with("instance is broken"),
        "{bad_line}"
    );
    assert_eq!(client.value("count"), "3");
}

#[test]
fn finished_calls_free_their_memory() {
    let mut cluster = new_cluster(&["--stats-ms", "100"]);
    cluster.start_service("2.1");
    let mut client = cluster.start_client("9.1", "rpc/memory.lua");
    let line = client.value("growth_kb");
    let (growth, rest) = line.split_once(' ').unwrap();
    assert!(
        growth.parse::<i64>().unwrap() < 256,
        "Lua memory grew by {growth} KiB over 200k calls"
    );
    assert_eq!(rest, "pending 0");
    // The router forgot every answered call too.
    let router = &mut cluster.routers[0].0;
    common::eventually("the router's tracked calls to drain", || {
        router
            .expect_err("router stats")
            .contains("tracked_calls=0 ")
            .then_some(())
    });
}

#[test]
fn direct_stream_calls_callback_style_and_a_dying_callee() {
    let mut server = Luna::start(&test_script("rpc/direct_server.lua"), &[]);
    let port = server.value("port");
    let mut client = Luna::start(&test_script("rpc/direct_client.lua"), &[&port]);
    assert_eq!(client.value("outside coroutine"), "false true");
    assert_eq!(client.value("callback"), "5 nil");
    assert_eq!(client.value("direct"), "42");
    server.expect("plain message\thello\tworld");
    client.expect("calling");
    server.expect("hanging");
    server.signal(libc::SIGKILL);
    assert_eq!(client.value("lost"), "nil connection-lost fast=true");
}
