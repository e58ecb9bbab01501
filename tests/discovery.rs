//! Discovery and master leases on a real redis-server (SPEC section 5).

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{Dir, Luna, eventually};

/// `luna watcher.lua <redis port> <ttl ms> <rescan ms>`: prints what it sees.
const WATCHER: &str = r#"
local d = require("luna.discovery").start{
    redis = { port = tonumber(luna.args[1]) }, prefix = "t",
    ttl_ms = tonumber(luna.args[2]), rescan_ms = tonumber(luna.args[3]),
}
d.watch("service", function(name, value) print("added " .. name .. " " .. value) end,
                   function(name) print("removed " .. name) end)
luna.timer(200, function() print("watching") end)
"#;

/// `luna service.lua <id> <redis port> <ttl ms> [lease] [password]`.
const SERVICE: &str = r#"
local id, port, ttl, lease, password = luna.args[1], tonumber(luna.args[2]), tonumber(luna.args[3]), luna.args[4], luna.args[5]
local d = require("luna.discovery").start{ redis = { port = port, password = password }, prefix = "t", ttl_ms = ttl }
d.register("service", id, "up")
if lease == "lease" then
    d.lease("match", id, {
        on_promote = function() print("promoted " .. id) end,
        on_demote = function(why) print("demoted " .. id .. " " .. why) end,
    })
end
local ticks = 0
luna.interval(50, function()
    ticks = ticks + 1
    if ticks % 10 == 0 then print("tick " .. ticks) end
end)
print("started " .. id)
"#;

fn setup() -> (Dir, Redis) {
    let dir = Dir::new();
    dir.write("watcher.lua", WATCHER);
    dir.write("service.lua", SERVICE);
    (dir, Redis::start(&[]))
}

fn start_service(dir: &Dir, redis: &Redis, id: &str, ttl: &str, extra: &[&str]) -> Luna {
    let port = redis.port.to_string();
    let mut args = vec!["service.lua", id, &port, ttl];
    args.extend_from_slice(extra);
    let mut service = Luna::start_in(dir.dir.path(), &args);
    service.expect(&format!("started {id}"));
    service
}

#[test]
fn services_are_discovered_and_dropped_through_notifications() {
    let (dir, redis) = setup();
    let port = redis.port.to_string();
    let early = start_service(&dir, &redis, "2.1", "1500", &[]);
    // No periodic re-scan: changes must come from the initial scan and from notifications.
    let mut watcher = Luna::start_in(dir.dir.path(), &["watcher.lua", &port, "1500", "600000"]);
    watcher.expect("added 2.1 up");
    let later = start_service(&dir, &redis, "2.2", "1500", &[]);
    watcher.expect("added 2.2 up");
    // SIGKILL: the key expires within its TTL.
    early.signal(libc::SIGKILL);
    watcher.expect("removed 2.1");
    // A graceful stop deletes the key at once (the TTL here is far longer than the wait).
    let mut slow = start_service(&dir, &redis, "2.3", "60000", &[]);
    watcher.expect("added 2.3 up");
    slow.signal(libc::SIGTERM);
    assert!(slow.wait_exit().success());
    watcher.expect("removed 2.3");
    later.signal(libc::SIGTERM);
    watcher.expect("removed 2.2");
    assert_eq!(redis.cli(&["KEYS", "t:service:*"]), "");
}

#[test]
fn rescan_finds_changes_when_config_set_is_refused() {
    let dir = Dir::new();
    dir.write("watcher.lua", WATCHER);
    dir.write("service.lua", SERVICE);
    let redis = Redis::start(&["--rename-command", "CONFIG", ""]);
    let port = redis.port.to_string();
    let mut watcher = Luna::start_in(dir.dir.path(), &["watcher.lua", &port, "1000", "300"]);
    watcher.expect("watching");
    let service = start_service(&dir, &redis, "2.1", "1000", &[]);
    watcher.expect("added 2.1 up");
    watcher.expect_err("keyspace notifications are off");
    service.signal(libc::SIGKILL);
    watcher.expect("removed 2.1");
}

#[test]
fn one_master_lease_and_fast_hand_over() {
    let (dir, redis) = setup();
    let mut first = start_service(&dir, &redis, "3.1", "1500", &["lease"]);
    first.expect("promoted 3.1");
    let mut second = start_service(&dir, &redis, "3.2", "1500", &["lease"]);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !second.stdout().iter().any(|l| l.starts_with("promoted")),
        "two masters"
    );
    assert_eq!(redis.cli(&["GET", "t:lease:match"]), "3.1");
    // SIGKILL the master: the backup takes over once the lease expires.
    first.signal(libc::SIGKILL);
    second.expect("promoted 3.2");
    assert_eq!(redis.cli(&["GET", "t:lease:match"]), "3.2");
    // A graceful stop hands over at once, even with a long TTL.
    drop(first);
    let mut third = start_service(&dir, &redis, "3.3", "60000", &["lease"]);
    second.signal(libc::SIGTERM);
    second.expect("demoted 3.2 released");
    third.expect("promoted 3.3");
    assert_eq!(redis.cli(&["GET", "t:lease:match"]), "3.3");
}

#[test]
fn a_lost_lease_demotes_at_once() {
    let (dir, redis) = setup();
    let mut holder = start_service(&dir, &redis, "3.1", "1500", &["lease"]);
    holder.expect("promoted 3.1");
    // Someone else takes the key: the next renewal fails the check and demotes.
    redis.cli(&["SET", "t:lease:match", "intruder", "PX", "60000"]);
    holder.expect("demoted 3.1 held by another");
}

#[test]
fn redis_outage_never_stops_a_service() {
    let (dir, mut redis) = setup();
    let router_script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua/router.lua");
    let mut router = Luna::start_in(
        dir.dir.path(),
        &[router_script.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    let address = router.value("listening");
    let port = redis.port.to_string();
    let node = dir.write(
        "node.lua",
        r#"
        local id, router, port = luna.args[1], luna.args[2], tonumber(luna.args[3])
        local d = require("luna.discovery").start{ redis = { port = port }, prefix = "t", ttl_ms = 1000 }
        d.register("service", id, "up")
        node = require("luna.cluster").start{ id = id, routers = { router }, heartbeat_ms = 200,
            handlers = { ping = function(n) return n end } }
        local ticks = 0
        luna.interval(20, function() ticks = ticks + 1 end)
        if id == "9.1" then
            local n = 0
            luna.interval(50, function()
                luna.go(function()
                    n = n + 1
                    local answer = node.call_target("2.1", "ping", n)
                    if answer then print("answer " .. answer .. " ticks " .. ticks) end
                end)
            end)
        end
        "#,
    );
    let mut service = Luna::start_in(dir.dir.path(), &[node.to_str().unwrap(), "2.1", &address, &port]);
    let mut client = Luna::start_in(dir.dir.path(), &[node.to_str().unwrap(), "9.1", &address, &port]);
    client.expect("answer ");
    eventually("registration", || {
        (redis.cli(&["GET", "t:service:2.1"]) == "up").then_some(())
    });

    redis.kill();
    service.expect_err("connection lost");
    let before = client.stdout().len();
    eventually("answers during the outage", || {
        (client.stdout().len() > before + 20).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    // Logged once per change of state, not once per retry.
    let errors = service
        .stderr()
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("redis"))
        .count();
    assert!(errors <= 3, "too many redis error lines:\n{}", service.stderr());

    redis.restart();
    // Everything re-syncs: the registration is back without a restart.
    eventually("re-registration", || {
        (redis.cli(&["GET", "t:service:2.1"]) == "up").then_some(())
    });
    service.expect_err("connected again");
    let before = client.stdout().len();
    eventually("answers after the outage", || {
        (client.stdout().len() > before + 5).then_some(())
    });
    drop(router);
}

#[test]
fn wrong_password_gives_a_clear_error() {
    let dir = Dir::new();
    dir.write("service.lua", SERVICE);
    let redis = Redis::start(&["--requirepass", "right"]);
    let port = redis.port.to_string();
    let mut wrong = Luna::start_in(dir.dir.path(), &["service.lua", "2.1", &port, "1000", "none", "wrong"]);
    let line = wrong.expect_err("authentication failed");
    assert!(line.contains("check the password"), "{line}");
    wrong.expect("tick 10"); // the process keeps running
    let mut right = Luna::start_in(dir.dir.path(), &["service.lua", "2.2", &port, "1000", "none", "right"]);
    right.expect("started 2.2");
    eventually("registration with the right password", || {
        (redis.cli(&["GET", "t:service:2.2"]) == "up").then_some(())
    });
    assert_eq!(redis.cli(&["GET", "t:service:2.1"]), "");
}

#[test]
fn services_follow_routers_found_by_discovery() {
    let (dir, redis) = setup();
    let router_script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua/router.lua");
    let redis_address = format!("127.0.0.1:{}", redis.port);
    let router_args = [
        router_script.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--redis",
        &redis_address,
        "--prefix",
        "t",
        "--ttl-ms",
        "1000",
    ];
    let node = dir.write(
        "node.lua",
        r#"
        local id, port = luna.args[1], tonumber(luna.args[2])
        local d = require("luna.discovery").start{ redis = { port = port }, prefix = "t", ttl_ms = 1000 }
        node = require("luna.cluster").start{ id = id, routers = {}, heartbeat_ms = 200,
            on_router_change = function(stream, address) print("router " .. tostring(address)) end }
        d.follow_routers(node)
        "#,
    );
    let port = redis.port.to_string();
    let mut service = Luna::start_in(dir.dir.path(), &[node.to_str().unwrap(), "2.1", &port]);
    let mut router = Luna::start_in(dir.dir.path(), &router_args);
    let address = router.value("listening");
    service.expect(&format!("router {address}"));
    router.signal(libc::SIGKILL);
    service.expect("router nil");
    let mut second = Luna::start_in(dir.dir.path(), &router_args);
    let address = second.value("listening");
    service.expect(&format!("router {address}"));
    // The dead router's key expired and the service dropped it.
    eventually("the dead router forgotten", || {
        (!service.stderr().contains("reconnect") && redis.cli(&["KEYS", "t:router:*"]).lines().count() == 1)
            .then_some(())
    });
}

#[test]
fn a_database_index_and_a_password_are_used() {
    let dir = Dir::new();
    let redis = Redis::start(&["--requirepass", "pw"]);
    let port = redis.port.to_string();
    let script = dir.write(
        "db.lua",
        r#"
        local d = require("luna.discovery").start{
            redis = { port = tonumber(luna.args[1]), password = "pw", db = 3 }, prefix = "t", ttl_ms = 1000,
            rescan_ms = 600000,
        }
        d.watch("service", function(name) print("added " .. name) end, function(name) print("removed " .. name) end)
        luna.timer(300, function() d.register("service", luna.args[2], "up") end)
        "#,
    );
    let mut watcher = Luna::start(&script, &[&port, "2.1"]);
    // Found through the keyspace notifications of database 3.
    watcher.expect("added 2.1");
    eventually("the key in database 3", || {
        (redis.cli(&["-n", "3", "GET", "t:service:2.1"]) == "up").then_some(())
    });
    assert_eq!(redis.cli(&["-n", "0", "GET", "t:service:2.1"]), "");
}
