//! Coroutine RPC (SPEC section 5): results, errors, timeouts, reloads, load.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{Dir, Luna};

/// `luna service.lua <id> <router>...`: a node whose handlers live in handlers.lua.
const SERVICE: &str = r##"
local cluster = require("luna.cluster")
local routers = {}
for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
_G.node = cluster.start{ id = luna.args[1], routers = routers, heartbeat_ms = 200, handlers = import("handlers.lua") }
function on_reload(path) print("reloaded " .. path:match("[^/]+$")) end
local ready = false
luna.interval(20, function()
    if not ready and #node.live_routers() == #routers then ready = true; print("ready " .. node.name) end
end)
"##;

const HANDLERS: &str = r##"
function echo(...) return ... end
function types() return 1, 2.5, "text", { list = { 1, 2 }, map = { k = "v" } }, nil, true end
function boom(message) error(message) end
function sleep(ms) luna.sleep(ms) return "slept " .. ms end
function version() return "v1 from " .. node.name end
function add(a, b) return a + b end
function chain(depth)
    if depth == 0 then return node.name end
    local rest, err = node.call_master(luna.service_group(node.id) + 1, "chain", depth - 1)
    if not rest then error("chain broke: " .. tostring(err)) end
    return node.name .. ">" .. rest
end
"##;

const CLIENT_HEAD: &str = r##"
local cluster = require("luna.cluster")
rpc = require("luna.rpc")
local routers = {}
for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
node = cluster.start{ id = luna.args[1], routers = routers, heartbeat_ms = 200 }
function when_ready(fn)
    local timer
    timer = luna.interval(20, function()
        if #node.live_routers() == #routers then timer.cancel(); luna.go(fn) end
    end)
end
function show(...)
    local parts = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        parts[i] = type(v) == "number" and (math.type(v) .. ":" .. tostring(v)) or tostring(v)
    end
    return table.concat(parts, " ")
end
"##;

fn cluster(services: &[&str]) -> Cluster {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 1, &[]);
    cluster.dir.write("handlers.lua", HANDLERS);
    for id in services {
        cluster.start_service(id);
    }
    cluster
}

#[test]
fn results_of_several_types_come_back() {
    let cluster = cluster(&["2.1"]);
    let mut client = cluster.start_client(
        "9.1",
        r##"
        when_ready(function()
            local a, b, c, d, e, f = node.call_target("2.1", "types")
            print("types " .. show(a, b, c, e, f), d.list[2], d.map.k)
            print("echo " .. show(node.call_target("2.1", "echo", 1, nil, 3.0, "x")))
            print("none " .. select("#", node.call_target("2.1", "echo")))
        end)
        "##,
    );
    assert_eq!(client.value("types"), "integer:1 float:2.5 text nil true\t2\tv");
    assert_eq!(client.value("echo"), "integer:1 nil float:3.0 x");
    assert_eq!(client.value("none"), "0");
}

#[test]
fn nested_calls_three_deep() {
    let cluster = cluster(&["2.1", "3.1", "4.1"]);
    let mut client = cluster.start_client(
        "9.1",
        r##"when_ready(function() print("chain " .. show(node.call_target("2.1", "chain", 2))) end)"##,
    );
    assert_eq!(client.value("chain"), "2.1>3.1>4.1");
}

#[test]
fn timeout_fires_and_a_late_reply_is_dropped() {
    let cluster = cluster(&["2.1"]);
    let mut client = cluster.start_client(
        "9.1",
        r##"
        when_ready(function()
            local t0 = luna.get_time_ms()
            local r, err = node.timeout(100).call_target("2.1", "sleep", 400)
            print("first " .. show(r, err, luna.get_time_ms() - t0 < 350))
            -- The next call gets its own answer, never the late one.
            print("second " .. show(node.call_target("2.1", "echo", "fresh")))
            luna.sleep(500)
            print("late " .. rpc.stats().late_replies .. " pending " .. rpc.stats().pending)
        end)
        "##,
    );
    assert_eq!(client.value("first"), "nil timeout true");
    assert_eq!(client.value("second"), "fresh");
    assert_eq!(client.value("late"), "1 pending 0");
}

#[test]
fn remote_error_no_route_and_connection_lost_are_different() {
    let mut cluster = cluster(&["2.1", "2.2"]);
    let mut client = cluster.start_client(
        "9.1",
        r##"
        when_ready(function()
            print("remote " .. show(node.call_target("2.1", "boom", "bad thing")))
            print("nomethod " .. show(node.call_target("2.1", "nope")))
            local t0 = luna.get_time_ms()
            print("noroute " .. show(node.timeout(20000).call_target("2.9", "echo", 1)) .. " fast=" .. tostring(luna.get_time_ms() - t0 < 5000))
            print("calling")
            t0 = luna.get_time_ms()
            local r, err = node.timeout(20000).call_target("2.2", "sleep", 15000)
            print("lost " .. show(r, err) .. " fast=" .. tostring(luna.get_time_ms() - t0 < 5000))
        end)
        "##,
    );
    let remote = client.value("remote");
    assert!(
        remote.starts_with("nil remote-error: ") && remote.ends_with("bad thing"),
        "{remote}"
    );
    assert_eq!(client.value("nomethod"), "nil remote-error: no method 'nope'");
    assert_eq!(client.value("noroute"), "nil no-route fast=true");
    client.expect("calling");
    std::thread::sleep(Duration::from_millis(200));
    cluster.kill_service("2.2");
    assert_eq!(client.value("lost"), "nil connection-lost fast=true");
}

#[test]
fn hot_reload_of_a_handler_changes_the_next_answer() {
    let mut cluster = cluster(&["2.1"]);
    let mut client = cluster.start_client(
        "9.1",
        r##"
        when_ready(function()
            while true do
                print("answer " .. show(node.call_target("2.1", "version")))
                luna.sleep(50)
            end
        end)
        "##,
    );
    assert_eq!(client.value("answer"), "v1 from 2.1");
    std::fs::write(
        cluster.dir.path("handlers.lua"),
        HANDLERS.replace("\"v1 from \"", "\"v2 from \""),
    )
    .unwrap();
    cluster.services.get_mut("2.1").unwrap().expect("reloaded handlers.lua");
    common::eventually("the new answer", || {
        (client.value("answer") == "v2 from 2.1").then_some(())
    });
}

#[test]
fn ten_thousand_concurrent_calls_complete_with_the_right_results() {
    let cluster = cluster(&["2.1", "2.2"]);
    let mut client = cluster.start_client(
        "9.1",
        r##"
        when_ready(function()
            local done, wrong = 0, 0
            for i = 1, 10000 do
                luna.go(function()
                    local sum, err = node.call_hash(2, i, "add", i, 1)
                    if sum ~= i + 1 then wrong = wrong + 1; print("bad", i, sum, err) end
                    done = done + 1
                    if done == 10000 then
                        print("done " .. done .. " wrong " .. wrong .. " pending " .. rpc.stats().pending)
                    end
                end)
            end
        end)
        "##,
    );
    assert_eq!(client.value("done"), "10000 wrong 0 pending 0");
}

#[test]
fn broadcast_call_reports_the_failing_instance_and_returns_the_others() {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 1, &[]);
    cluster.dir.write("handlers.lua", HANDLERS);
    cluster.dir.write(
        "handlers_bad.lua",
        "function version() error('instance is broken') end\n",
    );
    cluster.start_service("4.1");
    cluster.start_service("4.2");
    // 4.3 uses the broken handlers.
    std::fs::write(
        cluster.dir.path("service_bad.lua"),
        SERVICE.replace("handlers.lua", "handlers_bad.lua"),
    )
    .unwrap();
    let mut args = vec!["service_bad.lua".to_string(), "4.3".to_string()];
    args.extend(cluster.addresses());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut bad = Luna::start_in(cluster.dir.dir.path(), &args);
    bad.expect("ready 4.3");
    let mut client = cluster.start_client(
        "9.1",
        r##"
        when_ready(function()
            local results, err = node.call_broadcast(4, "version")
            local ids = {}
            for id in pairs(results) do ids[#ids + 1] = id end
            table.sort(ids)
            for _, id in ipairs(ids) do
                local r = results[id]
                print("result " .. luna.service_name(id) .. " " .. tostring(r.ok) .. " " .. tostring(r.ok and r[1] or r.err))
            end
            print("count " .. #ids)
        end)
        "##,
    );
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
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 1, &["--stats-ms", "100"]);
    cluster.dir.write("handlers.lua", HANDLERS);
    cluster.start_service("2.1");
    let mut client = cluster.start_client(
        "9.1",
        r##"
        local function batch(calls)
            local done = 0
            local me = coroutine.running()
            -- The same 200 callers in both batches: only the number of calls differs.
            for i = 1, 200 do
                luna.go(function()
                    for j = 1, calls // 200 do assert(node.call_target("2.1", "add", i, j) == i + j) end
                    done = done + 1
                    if done == 200 then luna.resume(me) end
                end)
            end
            coroutine.yield()
        end
        local function lua_kb()
            collectgarbage(); collectgarbage()
            return collectgarbage("count")
        end
        when_ready(function()
            batch(20000)
            local before = lua_kb()
            batch(200000)
            local after = lua_kb()
            print("growth_kb " .. math.floor(after - before) .. " pending " .. rpc.stats().pending)
        end)
        "##,
    );
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
    let dir = Dir::new();
    let server = dir.write(
        "server.lua",
        r##"
        local rpc = require("luna.rpc")
        local mgr = luna.create_socket_mgr(10)
        listener = mgr.listen("127.0.0.1", 0)
        handlers = {
            add = function(a, b) return a + b end,
            hang = function() luna.sleep(60000) end,
        }
        listener.on_accept = function(stream)
            held = stream
            rpc.serve(stream, handlers, function(msg, ...) print("plain message", msg, ...) end)
        end
        print("port " .. listener.port)
        "##,
    );
    let mut server = Luna::start(&server, &[]);
    let port = server.value("port");
    let client = dir.write(
        "client.lua",
        r##"
        local rpc = require("luna.rpc")
        local mgr = luna.create_socket_mgr(10)
        stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
        stream.on_connect = function()
            rpc.async(rpc.call, function(sum, err) print("callback " .. tostring(sum) .. " " .. tostring(err)) end, stream, "add", 2, 3)
            stream.call("hello", "world") -- plain one-way messages still work
            luna.go(function()
                print("direct " .. tostring(rpc.call(stream, "add", 40, 2)))
                local ok, err = pcall(rpc.call, stream, "add", print)
                print("unsendable " .. tostring(ok))
                print("calling")
                local t0 = luna.get_time_ms()
                local r, e = rpc.timeout(20000).call(stream, "hang")
                print("lost " .. tostring(r) .. " " .. tostring(e) .. " fast=" .. tostring(luna.get_time_ms() - t0 < 5000))
            end)
            local ok, err = pcall(rpc.call, stream, "add", 1, 1)
            print("outside coroutine " .. tostring(ok) .. " " .. tostring(err:match("inside a coroutine") ~= nil))
        end
        "##,
    );
    let mut client = Luna::start(&client, &[&port]);
    assert_eq!(client.value("outside coroutine"), "false true");
    assert_eq!(client.value("callback"), "5 nil");
    assert_eq!(client.value("direct"), "42");
    server.expect("plain message\thello\tworld");
    client.expect("calling");
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGKILL);
    assert_eq!(client.value("lost"), "nil connection-lost fast=true");
}
