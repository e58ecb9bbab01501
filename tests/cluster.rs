//! Routers and forwarding (SPEC section 4) with real router and service processes.

mod common;

use std::collections::HashMap;

use common::cluster::Cluster;
use common::{Dir, Luna};

/// A service: `luna service.lua <id> <router>...`. It answers `whoami`,
/// counts `count` messages, echoes `echo` payloads back to the sender.
const SERVICE: &str = r#"
local cluster = require("luna.cluster")
local routers = {}
for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
counts = {}
node = cluster.start{
    id = luna.args[1],
    routers = routers,
    heartbeat_ms = 200,
    on_call = function(msg, a, b, c)
        if msg == "whoami" then
            node.forward_target(a, "iam", b, node.name)
        elseif msg == "count" then
            counts[a] = (counts[a] or 0) + 1
            print("count " .. a .. " " .. counts[a])
        elseif msg == "echo" then
            node.forward_target(a, "echoed", b, node.name)
        end
    end,
}
local ready = false
luna.interval(20, function()
    if not ready and #node.live_routers() == #routers then
        ready = true
        print("ready " .. node.name)
    end
end)
"#;

/// Client preamble: a node with id 9.x that collects replies.
const CLIENT_HEAD: &str = r#"
local cluster = require("luna.cluster")
local routers = {}
for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
replies = {}
node = cluster.start{
    id = luna.args[1],
    routers = routers,
    heartbeat_ms = 200,
    on_call = function(msg, tag, who, extra)
        replies[#replies + 1] = { msg = msg, tag = tag, who = who, extra = extra }
        if on_reply then on_reply(msg, tag, who, extra) end
    end,
    on_forward_error = function(err, mode, target, ...)
        print("forward_error", err, mode, target, ...)
    end,
}
local function when_ready(fn)
    local timer
    timer = luna.interval(20, function()
        if #node.live_routers() == #routers then timer.cancel(); fn() end
    end)
end
"#;

/// Asks every key through router `via` (1-based) and prints `owner <key> <service>` lines.
const ASK_OWNERS: &str = r#"
local keys = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "alice", "bob", "carol", "dave", "erin", "frank" }
local via = tonumber(os.getenv("VIA") or "1")
on_reply = function(msg, tag, who)
    if msg == "iam" then print("owner " .. tostring(tag) .. " " .. who) end
end
when_ready(function()
    local stream = node.links[via].stream
    for _, key in ipairs(keys) do stream.forward_hash(2, key, "whoami", node.id, key) end
end)
"#;

fn owners(client: &mut Luna) -> HashMap<String, String> {
    (0..18)
        .map(|_| {
            let line = client.value("owner");
            let (key, who) = line.split_once(' ').unwrap();
            (key.to_string(), who.to_string())
        })
        .collect()
}

#[test]
fn hash_is_deterministic_across_routers_and_follows_the_documented_rule() {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 2, &[]);
    for id in ["2.3", "2.1", "2.2"] {
        cluster.start_service(id);
    }
    let mut first = cluster.start_client("9.1", &ASK_OWNERS.replace("os.getenv(\"VIA\") or \"1\"", "\"1\""));
    let mut second = cluster.start_client("9.2", &ASK_OWNERS.replace("os.getenv(\"VIA\") or \"1\"", "\"2\""));
    let via_first = owners(&mut first);
    let via_second = owners(&mut second);
    assert_eq!(
        via_first, via_second,
        "both routers pick the same instance for every key"
    );
    // Integer keys: key % 3 over the nodes sorted by id.
    for key in 0..12 {
        assert_eq!(via_first[&key.to_string()], format!("2.{}", key % 3 + 1), "key {key}");
    }
    let used: std::collections::HashSet<&String> = via_first.values().collect();
    assert_eq!(used.len(), 3, "{via_first:?}");
}

#[test]
fn zero_token_slots_walk_forward_and_removal_respreads() {
    // --keep-slots: a dead service keeps its slot (token 0): only its keys move, to the next node.
    let mut kept = Cluster::new(SERVICE, CLIENT_HEAD, 1, &["--keep-slots"]);
    for id in ["2.1", "2.2", "2.3"] {
        kept.start_service(id);
    }
    kept.kill_service("2.2");
    kept.routers[0].0.expect_err("2.2 gone");
    let mut client = kept.start_client("9.1", ASK_OWNERS);
    let map = owners(&mut client);
    for key in 0..12 {
        let expected = match key % 3 {
            0 => "2.1",
            1 => "2.3", // 2.2's slot walks forward
            _ => "2.3",
        };
        assert_eq!(map[&key.to_string()], expected, "key {key}");
    }

    // Default: a dead service is removed and keys spread over the rest.
    let mut removed = Cluster::new(SERVICE, CLIENT_HEAD, 1, &[]);
    for id in ["2.1", "2.2", "2.3"] {
        removed.start_service(id);
    }
    removed.kill_service("2.2");
    removed.routers[0].0.expect_err("2.2 gone");
    let mut client = removed.start_client("9.1", ASK_OWNERS);
    let map = owners(&mut client);
    for key in 0..12 {
        let expected = if key % 2 == 0 { "2.1" } else { "2.3" };
        assert_eq!(map[&key.to_string()], expected, "key {key}");
    }
}

const ASK_MASTER: &str = r#"
on_reply = function(msg, tag, who) if msg == "iam" then print("master " .. tag .. " " .. who) end end
local n = 0
when_ready(function()
    luna.interval(50, function()
        n = n + 1
        node.forward_master(3, "whoami", node.id, n)
    end)
end)
"#;

#[test]
fn master_by_default_explicit_and_after_the_master_dies() {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 2, &[]);
    cluster.start_service("3.2");
    cluster.start_service("3.1");
    let mut client = cluster.start_client("9.1", ASK_MASTER);
    assert!(
        client.value("master").ends_with(" 3.1"),
        "the first node in id order is master"
    );

    // SIGKILL the master: traffic moves to the backup.
    cluster.kill_service("3.1");
    common::eventually("master traffic on 3.2", || {
        client.value("master").ends_with(" 3.2").then_some(())
    });

    // An explicit master wins over id order.
    cluster.start_service("3.1");
    common::eventually("3.1 back as default master", || {
        client.value("master").ends_with(" 3.1").then_some(())
    });
    let claim = cluster.dir.write(
        "claim.lua",
        r#"
        local cluster = require("luna.cluster")
        node = cluster.start{ id = "3.3", routers = { luna.args[1], luna.args[2] }, heartbeat_ms = 200,
            on_call = function(msg, a, b) if msg == "whoami" then node.forward_target(a, "iam", b, node.name) end end }
        local t
        t = luna.interval(20, function()
            if #node.live_routers() == 2 then t.cancel(); node.claim_master(); print("claimed") end
        end)
        "#,
    );
    let addresses = cluster.addresses();
    let mut claimer = Luna::start(&claim, &[&addresses[0], &addresses[1]]);
    claimer.expect("claimed");
    common::eventually("explicit master 3.3", || {
        client.value("master").ends_with(" 3.3").then_some(())
    });
}

#[test]
fn broadcast_reaches_every_live_instance_once_and_random_spreads() {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 1, &[]);
    for id in ["4.1", "4.2", "4.3", "4.4"] {
        cluster.start_service(id);
    }
    let mut client = cluster.start_client(
        "9.1",
        r#"
        when_ready(function()
            for i = 1, 10 do node.forward_broadcast(4, "count", "bc") end
            for i = 1, 200 do node.forward_random(4, "count", "rnd") end
            print("sent")
        end)
        "#,
    );
    client.expect("sent");
    for (_, service) in cluster.services.iter_mut() {
        service.expect("count bc 10");
        // Random: every instance gets some of the 200.
        service.expect("count rnd 1");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    for (id, service) in &cluster.services {
        assert!(
            !service.stdout().iter().any(|l| l == "count bc 11"),
            "{id} got a broadcast twice"
        );
    }
    let total: u32 = cluster
        .services
        .values()
        .map(|s| {
            s.stdout()
                .iter()
                .filter_map(|l| l.strip_prefix("count rnd "))
                .map(|n| n.parse::<u32>().unwrap())
                .max()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(total, 200);
}

#[test]
fn undeliverable_forwards_are_reported_and_counted() {
    let dir = Dir::new();
    let router = dir.write(
        "router.lua",
        r#"
        r = require("luna.router").start{ listen = "127.0.0.1:0" }
        luna.interval(50, function()
            local s = r.mgr.stats()
            print("stats forwarded=" .. s.forwarded .. " failed=" .. s.forward_failed)
        end)
        "#,
    );
    let mut router = Luna::start(&router, &[]);
    let address = router.value("listening");
    let client = dir.write(
        "client.lua",
        &format!(
            "{CLIENT_HEAD}\n{}",
            r#"
            when_ready(function()
                node.forward_target("2.7", "lost", 1)
                node.forward_master(5, "lost", 2)
                node.forward_hash(6, "key", "lost", 3)
                node.forward_random(7, "lost", 4)
                node.forward_broadcast(8, "lost", 5)
                node.forward_target(node.id, "to myself")
            end)
            on_reply = function(msg) print("delivered " .. msg) end
            "#
        ),
    );
    let mut client = Luna::start(&client, &["9.1", &address]);
    client.expect("forward_error\tno-route\ttarget\t131079\tlost\t1");
    client.expect("forward_error\tno-route\tmaster\t5\tlost\t2");
    client.expect("forward_error\tno-route\thash\t6\tlost\t3");
    client.expect("forward_error\tno-route\trandom\t7\tlost\t4");
    client.expect("forward_error\tno-route\tbroadcast\t8\tlost\t5");
    client.expect("delivered to myself");
    router.expect("stats forwarded=1 failed=5");
}

#[test]
fn killing_one_of_two_routers_leaves_the_cluster_serving() {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 2, &[]);
    cluster.start_service("2.1");
    let mut client = cluster.start_client(
        "9.1",
        r#"
        local n = 0
        on_reply = function(msg, tag, who) print("reply " .. tag) end
        when_ready(function()
            print("ready")
            luna.interval(20, function() n = n + 1; node.forward_target("2.1", "echo", node.id, n) end)
        end)
        "#,
    );
    client.expect("ready");
    client.expect("reply ");
    let (mut first, _) = cluster.routers.remove(0);
    first.signal(libc::SIGKILL);
    first.wait_exit();
    // Replies keep coming through the other router.
    let before = client.stdout().len();
    common::eventually("replies after the router died", || {
        let lines = client.stdout();
        (lines.len() > before + 20 && lines[before..].iter().filter(|l| l.starts_with("reply ")).count() >= 20)
            .then_some(())
    });
}

#[test]
fn a_one_mib_payload_forwards_intact() {
    let mut cluster = Cluster::new(SERVICE, CLIENT_HEAD, 1, &[]);
    cluster.start_service("2.1");
    let mut client = cluster.start_client(
        "9.1",
        r#"
        local blob = {}
        for i = 1, 1024 * 1024 do blob[i] = string.char((i * 7) % 256) end
        blob = table.concat(blob)
        on_reply = function(msg, tag, who) print("intact", tag == blob, #tag, who) end
        when_ready(function() node.forward_target("2.1", "echo", node.id, blob) end)
        "#,
    );
    client.expect("intact\ttrue\t1048576\t2.1");
}
