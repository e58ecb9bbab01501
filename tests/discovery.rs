//! Discovery and master leases on a real redis-server (README "Discovery and master leases on Redis").

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{Luna, eventually, start_router, test_script};

/// Starts `luna <script> <args...>` in tests/scripts/discovery/.
fn start(script: &str, args: &[&str]) -> Luna {
    let mut all = vec![script];
    all.extend_from_slice(args);
    Luna::start_in(&test_script("discovery"), &all)
}

/// `service.lua <id> <redis port> <ttl> <extra...>`, waited for until `started`.
fn start_service(redis: &Redis, id: &str, ttl: &str, extra: &[&str]) -> Luna {
    let port = redis.port.to_string();
    let mut args = vec![id, &port, ttl];
    args.extend_from_slice(extra);
    let mut service = start("service.lua", &args);
    service.expect(&format!("started {id}"));
    service
}

#[test]
fn services_are_discovered_and_dropped_through_notifications() {
    let redis = Redis::start(&[]);
    let port = redis.port.to_string();
    let early = start_service(&redis, "2.1", "1500", &[]);
    // No periodic re-scan: changes must come from the initial scan and from notifications.
    let mut watcher = start("watcher.lua", &[&port, "1500", "600000"]);
    watcher.expect("added 2.1 up");
    let later = start_service(&redis, "2.2", "1500", &[]);
    watcher.expect("added 2.2 up");
    // SIGKILL: the key expires within its TTL.
    early.signal(libc::SIGKILL);
    watcher.expect("removed 2.1");
    // A graceful stop deletes the key at once (the TTL here is far longer than the wait).
    let mut slow = start_service(&redis, "2.3", "60000", &[]);
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
    let redis = Redis::start(&["--rename-command", "CONFIG", ""]);
    let port = redis.port.to_string();
    let mut watcher = start("watcher.lua", &[&port, "1000", "300"]);
    // Logged once the refused CONFIG SET is answered, after the first scan
    // (sent before it): the service below can only be found by a re-scan.
    watcher.expect_err("keyspace notifications are off");
    let service = start_service(&redis, "2.1", "1000", &[]);
    watcher.expect("added 2.1 up");
    service.signal(libc::SIGKILL);
    watcher.expect("removed 2.1");
}

#[test]
fn one_master_lease_and_fast_hand_over() {
    let redis = Redis::start(&[]);
    let mut first = start_service(&redis, "3.1", "1500", &["lease"]);
    first.expect("promoted 3.1");
    let mut second = start_service(&redis, "3.2", "1500", &["lease"]);
    // A second of the backup's own ticks: two of its lease refreshes (a
    // third of the TTL each) passed while the first held the lease.
    second.expect("tick 20");
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
    let mut third = start_service(&redis, "3.3", "60000", &["lease"]);
    second.signal(libc::SIGTERM);
    second.expect("demoted 3.2 released");
    third.expect("promoted 3.3");
    assert_eq!(redis.cli(&["GET", "t:lease:match"]), "3.3");
}

#[test]
fn a_lost_lease_demotes_at_once() {
    let redis = Redis::start(&[]);
    let mut holder = start_service(&redis, "3.1", "1500", &["lease"]);
    holder.expect("promoted 3.1");
    // Someone else takes the key: the next renewal fails the check and demotes.
    redis.cli(&["SET", "t:lease:match", "intruder", "PX", "60000"]);
    holder.expect("demoted 3.1 held by another");
}

#[test]
fn redis_outage_never_stops_a_service() {
    let mut redis = Redis::start(&[]);
    let (router, address) = start_router(&test_script("discovery"), &[]);
    let port = redis.port.to_string();
    let mut service = start("node.lua", &["2.1", &address, &port]);
    let mut client = start("node.lua", &["9.1", &address, &port]);
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
    // Not a wait: a window in which the service retries Redis many times;
    // the problems are logged once per change of state, not once per retry.
    std::thread::sleep(Duration::from_millis(1500));
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
    let redis = Redis::start(&["--requirepass", "right"]);
    let port = redis.port.to_string();
    let mut wrong = start("service.lua", &["2.1", &port, "1000", "none", "wrong"]);
    let line = wrong.expect_err("authentication failed");
    assert!(line.contains("check the password"), "{line}");
    wrong.expect("tick 10"); // the process keeps running
    let mut right = start("service.lua", &["2.2", &port, "1000", "none", "right"]);
    right.expect("started 2.2");
    eventually("registration with the right password", || {
        (redis.cli(&["GET", "t:service:2.2"]) == "up").then_some(())
    });
    assert_eq!(redis.cli(&["GET", "t:service:2.1"]), "");
}

#[test]
fn services_follow_routers_found_by_discovery() {
    let redis = Redis::start(&[]);
    let redis_address = format!("127.0.0.1:{}", redis.port);
    let router_args = ["--redis", &redis_address, "--prefix", "t", "--ttl-ms", "1000"];
    let port = redis.port.to_string();
    let mut service = start("follower.lua", &["2.1", &port]);
    let (router, address) = start_router(&test_script("discovery"), &router_args);
    service.expect(&format!("router {address}"));
    router.signal(libc::SIGKILL);
    service.expect("router nil");
    let (_second, address) = start_router(&test_script("discovery"), &router_args);
    service.expect(&format!("router {address}"));
    // The dead router's key expired and the service dropped it.
    eventually("the dead router forgotten", || {
        (!service.stderr().contains("reconnect") && redis.cli(&["KEYS", "t:router:*"]).lines().count() == 1)
            .then_some(())
    });
}

#[test]
fn a_database_index_and_a_password_are_used() {
    let redis = Redis::start(&["--requirepass", "pw"]);
    let port = redis.port.to_string();
    let mut watcher = start("database.lua", &[&port, "2.1"]);
    // Found through the keyspace notifications of database 3.
    watcher.expect("added 2.1");
    eventually("the key in database 3", || {
        (redis.cli(&["-n", "3", "GET", "t:service:2.1"]) == "up").then_some(())
    });
    assert_eq!(redis.cli(&["-n", "0", "GET", "t:service:2.1"]), "");
}
